"""Run Airflow 3 components as real processes: for `make demo`, `make up` and the tests.

Airflow is driven through its own CLI and REST API, never imported here (only dags/
and plugins/ import Airflow). Every component gets the same settings: one JWT
secret, one execution-API base URL, one metadata DB (see shared AIRFLOW3-RECIPE).

Threat model: the api-server binds 127.0.0.1 unless told otherwise; the admin
password lives in a 0600 file under AIRFLOW_HOME and is never printed to logs; the
Fernet key and JWT secret are generated per AIRFLOW_HOME and kept 0600 there.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
ADMIN_USER = "admin"
# Roles for SimpleAuthManager: ops may trigger runs, auditors only read.
DEFAULT_USERS = "admin:admin,ops:op,auditor:viewer"
# OpenLineage events carry the DAG run's conf; an erasure request's conf holds the subject's
# identifier, so no event is emitted for that DAG (its own signed manifest records the erasure).
FINISHED_TASK_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
ERASURE_LINEAGE_POLICY = json.dumps([{"scope": {"dag_id": "erasure_request"}, "controls": {"emit": False},
                                      "locked": True}])


def _secret_file(home: Path, name: str, make) -> str:
    path = home / name
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
    return path.read_text().strip()


def _fernet_key() -> str:
    import base64

    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def passwords_file(home: Path) -> Path:
    path = home / "passwords.json"
    _secret_file(
        home,
        "passwords.json",
        lambda: json.dumps({user.split(":")[0]: secrets.token_urlsafe(18) for user in DEFAULT_USERS.split(",")}),
    )
    return path


@dataclass
class StackConfig:
    home: Path
    api_port: int
    sql_alchemy_conn: str
    executor: str = "LocalExecutor"
    broker_url: str | None = None
    result_backend: str | None = None
    host: str = "127.0.0.1"
    parallelism: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    def env(self) -> dict[str, str]:
        home = self.home
        # Nothing Airflow-related leaks in from the caller's environment (a test session's own
        # AIRFLOW_HOME, DB or unit-test mode): a stack is configured by this object alone.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env = {
            **inherited,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # Paused until triggered through `trigger`: no scheduled run (a daily audit, a weekly
            # retrain) starts by itself in a demo or test stack and competes for its two cores.
            # erasure_request overrides this (is_paused_upon_creation=False): a request never waits on it.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__FERNET_KEY": _secret_file(home, "fernet.key", _fernet_key),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": DEFAULT_USERS,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(home)),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",
            "AIRFLOW__API_AUTH__JWT_SECRET": _secret_file(home, "jwt.secret", lambda: secrets.token_urlsafe(64)),
            "AIRFLOW__API__SECRET_KEY": _secret_file(home, "api.secret", lambda: secrets.token_urlsafe(32)),
            "AIRFLOW__API__HOST": self.host,
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(home / "openlineage" / "events.jsonl"), "append": True}
            ),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "securepipe",
            "AIRFLOW__OPENLINEAGE__EMISSION_POLICY": ERASURE_LINEAGE_POLICY,
            "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONPATH": str(REPO_ROOT / "include"),
        }
        (home / "openlineage").mkdir(parents=True, exist_ok=True)
        if self.broker_url:
            env["AIRFLOW__CELERY__BROKER_URL"] = self.broker_url
        if self.result_backend:
            env["AIRFLOW__CELERY__RESULT_BACKEND"] = self.result_backend
        env.update(self.extra_env)
        return env


class AirflowStack:
    """Start, drive and stop a set of Airflow components sharing one StackConfig."""

    def __init__(self, config: StackConfig):
        self.config = config
        self.env = config.env()
        self.processes: dict[str, subprocess.Popen] = {}
        self.log_dir = config.home / "process-logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._token: str | None = None

    @property
    def airflow(self) -> str:
        return str(Path(sys.executable).with_name("airflow"))

    def run_cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(  # noqa: S603 - fixed argv
            [self.airflow, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=True
        )

    def migrate(self) -> None:
        self.run_cli("db", "migrate")

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [self.airflow, *args], env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=self.config.home,
        )
        self.processes[name] = process
        return process

    def start_core(self) -> None:
        self.start("api-server", "api-server")
        self.start("scheduler", "scheduler")
        self.start("dag-processor", "dag-processor")
        self.wait_healthy()

    def start_celery_worker(self, name: str, queues: str, log_server_port: int, concurrency: int = 2) -> None:
        self.start(
            f"worker-{name}",
            "celery", "worker", "-q", queues, "-H", f"{name}@%h", "-c", str(concurrency),
            env={"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_server_port)},
        )

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                with urllib.request.urlopen(f"{self.config.base_url}/api/v2/monitor/health", timeout=3) as reply:  # noqa: S310
                    health = json.load(reply)
                if health.get("scheduler", {}).get("status") == "healthy":
                    return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"Airflow did not become healthy in {timeout:.0f}s; logs in {self.log_dir}")
            time.sleep(1)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"airflow {name} exited with {process.returncode}; see {self.log_dir / name}.log")

    # --- REST API -------------------------------------------------------------------------------
    def token(self, user: str = ADMIN_USER) -> str:
        if self._token is None:
            password = json.loads(passwords_file(self.config.home).read_text())[user]
            reply = self.request("POST", "/auth/token", {"username": user, "password": password}, auth=False)
            self._token = reply["access_token"]
        return self._token

    def request(self, method: str, path: str, body=None, auth: bool = True):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.config.base_url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", f"Bearer {self.token()}")
        with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - loopback API
            return json.load(reply)

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        """Wait until this stack's dag-processor has parsed the DAG (a DB kept from an earlier
        start knows the DAG before it is parsed again, and triggering it then answers 404)."""
        from datetime import datetime, timezone

        started = datetime.now(timezone.utc)
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG {dag_id} was not parsed within {timeout:.0f}s; see {self.log_dir}")
            try:
                dag = self.request("GET", f"/api/v2/dags/{dag_id}")
                parsed = dag.get("last_parsed_time")
                if parsed and datetime.fromisoformat(parsed.replace("Z", "+00:00")) >= started \
                        and not dag.get("is_stale"):
                    return
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
            except OSError:  # the api-server is still starting
                time.sleep(1)
                continue
            errors = self.request("GET", "/api/v2/importErrors")["import_errors"]
            broken = [e for e in errors if e["filename"].endswith(f"{dag_id}.py")
                      and datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) >= started]
            if broken:
                raise RuntimeError(f"{broken[0]['filename']} does not import:\n{broken[0]['stack_trace']}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG {dag_id} was not parsed within {timeout:.0f}s; see {self.log_dir}")
            time.sleep(1)

    def trigger(self, dag_id: str, conf: dict | None = None, run_id: str | None = None) -> str:
        self.request("PATCH", f"/api/v2/dags/{dag_id}?update_mask=is_paused", {"is_paused": False})
        body = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 1800, progress=None) -> str:
        """The run's final state; `progress` (securepipe.progress.Progress in tasks) follows its tasks."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            state = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if progress is not None:
                states = self.task_states(dag_id, run_id)  # mapped tasks appear as they expand
                progress.total = len(states)
                progress.advance(sum(s in FINISHED_TASK_STATES for s in states.values()) - progress.done)
            if state in ("success", "failed"):
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} run {run_id} still {state} after {timeout:.0f}s")
            time.sleep(2)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")[
            "task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        states: dict[str, str] = {}
        for ti in self.task_instances(dag_id, run_id):
            key = ti["task_id"] if ti.get("map_index", -1) < 0 else f"{ti['task_id']}[{ti['map_index']}]"
            states[key] = ti["state"]
        return states

    def kill(self, name: str) -> None:
        """SIGKILL a component and everything it started (a crash, not a shutdown)."""
        process = self.processes.pop(name)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()

    def stop(self) -> None:
        # Workers first, so nothing picks up new work while the scheduler goes down.
        order = sorted(self.processes, key=lambda name: not name.startswith("worker"))
        for name in order:
            process = self.processes[name]
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 30
        for name in order:
            process = self.processes[name]
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()
        self.processes.clear()
