"""End-to-end fixtures: real Airflow components on the production path.

PostgreSQL (127.0.0.1:5432, a throwaway database), CeleryExecutor with a Redis broker
(its own redis-server on a free port when the binary exists, else 127.0.0.1:6379),
api-server + scheduler + dag-processor + a real `airflow celery worker` serving the
`default` and `gpu` queues, the local KMS/S3 emulator, and storage on s3:// through
the `aws_default` connection. Skips, saying why, only when PostgreSQL or Redis is absent.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from securepipe import kms_emulator
from securepipe.demo.runner import embedded_env
from securepipe.demo.stack import AirflowStack, StackConfig

from .tcp_fault_proxy import FaultProxy

PG = ("127.0.0.1", 5432)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _psql(sql: str) -> None:
    subprocess.run(["psql", "-h", PG[0], "-p", str(PG[1]), "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql],
                   check=True, capture_output=True)


@pytest.fixture(scope="session")
def redis_url():
    if shutil.which("redis-server"):
        port = kms_emulator.free_port()
        process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not _reachable("127.0.0.1", port):
            if time.monotonic() > deadline:
                process.kill()
                pytest.skip("redis-server did not start")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
        process.terminate()
        process.wait(timeout=10)
    elif _reachable("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/7"
    else:
        pytest.skip("Redis is not available (no redis-server binary, nothing on 127.0.0.1:6379)")


@pytest.fixture(scope="session")
def postgres_db():
    if not _reachable(*PG) or not shutil.which("psql"):
        pytest.skip("PostgreSQL is not available on 127.0.0.1:5432 (or psql is missing)")
    name = f"securepipe_test_{uuid.uuid4().hex[:10]}"
    _psql(f"CREATE DATABASE {name}")
    yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


BUCKET = "securepipe-test"


def s3_client(emulator):
    import boto3

    return boto3.client("s3", endpoint_url=emulator.endpoint_url, region_name="us-east-1",
                        **{k.lower(): v for k, v in kms_emulator.DUMMY_CREDENTIALS.items()})


def stored_objects(emulator) -> dict[str, bytes]:
    s3 = s3_client(emulator)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def is_ciphertext_bytes(data: bytes) -> bool:
    import io

    from securepipe.crypto.envelope import read_header
    from securepipe.errors import CryptoError

    try:
        read_header(io.BytesIO(data), "object")
    except CryptoError:
        return False
    return True


def start_worker(stack: AirflowStack) -> None:
    """The celery worker serving both queues (one host here; compose splits cpu and gpu workers)."""
    stack.start_celery_worker("default", "default,gpu", log_server_port=kms_emulator.free_port(), concurrency=2)


@pytest.fixture(scope="session")
def celery_stack(tmp_path_factory, postgres_db, redis_url):
    """The production path, for real; yields (stack, settings namespace)."""
    home = tmp_path_factory.mktemp("airflow-celery")
    (home / "config").mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "airflow_local_settings.py", home / "config")  # retries wait 1 s
    emulator = kms_emulator.start_emulator(log_path=home / "kms-emulator.log")
    stack = None
    try:
        kms_emulator.create_key(emulator.endpoint_url)
        s3_client(emulator).create_bucket(Bucket=BUCKET)
        # Every AWS call of the stack goes through a proxy the fault tests can break.
        proxy = FaultProxy("127.0.0.1", int(emulator.endpoint_url.rsplit(":", 1)[1]))
        extra = embedded_env(home, proxy.url, kms_emulator.DEMO_KEY_ALIAS)
        extra["AIRFLOW_VAR_SECUREPIPE_STORAGE_URI"] = f"s3://{BUCKET}/storage"
        extra["AIRFLOW_VAR_SECUREPIPE_PRIVACY_BUDGETS"] = '{"*": {"epsilon": 200, "delta": 0.001}}'
        # A killed worker's task is noticed in seconds, not the default five minutes.
        extra["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] = "20"
        extra["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL"] = "5"
        config = StackConfig(
            home=home,
            api_port=kms_emulator.free_port(),
            sql_alchemy_conn=postgres_db,
            executor="CeleryExecutor",
            broker_url=redis_url,
            result_backend="db+" + postgres_db.replace("+psycopg2", ""),
            parallelism=8,
            extra_env=extra,
        )
        stack = AirflowStack(config)
        stack.migrate()
        stack.run_cli("pools", "set", "gpu", "1", "GPU slots")
        stack.start_core()
        start_worker(stack)
        stack.fault_proxy = proxy
        yield stack, emulator
    finally:
        if stack is not None:
            stack.stop()
        emulator.stop()
