"""Shared fixtures: a real KMS emulator (moto server on loopback) for the session."""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
# Stacks, emulators and redis-server end with the session, also on Ctrl-C, SIGTERM or SIGHUP.
pytest_plugins = ["process_groups"]

# Airflow reads its settings once, on first import, wherever that happens (a test importing
# airflow.sdk, a fixture): so the whole session's AIRFLOW_HOME and DB are fixed here, first.
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="securepipe-test-airflow-"))
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)
# The test deployments' cluster policy (a retry waits 1 s); Airflow imports it from config/.
(AIRFLOW_HOME / "config").mkdir()
shutil.copy(REPO / "tests" / "airflow_local_settings.py", AIRFLOW_HOME / "config")
AIRFLOW_TEST_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    "PYTHONPATH": os.pathsep.join([str(REPO / "dags"), str(REPO / "include")]),
}
os.environ.update(AIRFLOW_TEST_ENV)

# No test may reach the network: Presidio's tldextract would try to download a suffix list.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
# Nor may boto3 probe the EC2 metadata endpoint when it finds no credentials.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


@pytest.fixture
def state(tmp_path, monkeypatch, kms_env):
    """An empty state dir for the evidence modules, with the emulator's KMS key (the evidence signing
    key is always KMS-wrapped) and no key file or manifests dir inherited."""
    monkeypatch.setenv("SECUREPIPE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SECUREPIPE_KMS_KEY_ID", kms_env.key_arn)
    for name in ("SECUREPIPE_SIGNING_KEY_FILE", "SECUREPIPE_MANIFESTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def kms_env():
    """Start moto server, create the demo key, and point the standard AWS variables at it."""
    from securepipe import kms_emulator

    emulator = kms_emulator.start_emulator()
    key_arn = kms_emulator.create_key(emulator.endpoint_url)
    env = kms_emulator.client_env(emulator.endpoint_url, key_arn)
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield SimpleNamespace(
            endpoint_url=emulator.endpoint_url, key_arn=key_arn, alias=kms_emulator.DEMO_KEY_ALIAS, env=env
        )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        emulator.stop()


@pytest.fixture(scope="session")
def airflow_home():
    """The session's AIRFLOW_HOME (set at import, above) with a migrated SQLite DB."""
    sys.path.insert(0, str(REPO / "dags"))
    from airflow.utils import db

    db.initdb()
    return SimpleNamespace(path=AIRFLOW_HOME, env={**os.environ, **AIRFLOW_TEST_ENV})


# The modules that share one session-scoped celery_stack (tests/e2e/conftest.py) on one xdist worker:
# the fault tests and the production path. The load test starts a stack of its own on another worker,
# so the two run side by side: both spend much of their time waiting on the scheduler, heartbeats
# and timeouts, and one after the other they took longer than the whole suite may.
CELERY_STACK_MODULES = frozenset({"tests/e2e/test_faults.py", "tests/e2e/test_production_path.py"})
# Work units that start a celery stack, longest first.
STACK_UNITS = ("tests/e2e/test_load.py", "celery_stack")


def _work_unit(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    return "celery_stack" if module in CELERY_STACK_MODULES else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`make test` runs pytest-xdist workers. A module's tests stay on one worker, so its module-scoped
    fixture (a dag.test() run, an api-server) is built once; the celery stack's modules stay together.
    Work goes out in collection order, which puts the slowest first (below)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByModuleAndStack(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    config.option.loadscopereorder = False  # by test count otherwise, which says nothing of duration
    return ByModuleAndStack(config, log)


def pytest_collection_modifyitems(config, items):
    """The stack tests first, then the other slow modules, then the rest: the longest work starts at
    once and the quick tests fill in around it."""

    def weight(item) -> int:
        unit = _work_unit(item.nodeid)
        if unit in STACK_UNITS:
            return STACK_UNITS.index(unit)
        return len(STACK_UNITS) + (0 if item.get_closest_marker("slow") else 1)

    items.sort(key=weight)
