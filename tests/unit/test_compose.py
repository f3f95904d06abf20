"""docker-compose.yaml checked statically (no Docker engine here) against the settings the tests run with."""
from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW_SERVICES = ["airflow-init", "api-server", "scheduler", "dag-processor", "triggerer", "worker-cpu", "worker-gpu"]
# The settings every component must share (the production-path fixture sets the same ones).
SHARED = [
    "AIRFLOW__CORE__EXECUTOR", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__BASE_URL", "AIRFLOW__CORE__LOAD_EXAMPLES", "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW_CONN_AWS_DEFAULT", "AIRFLOW_VAR_SECUREPIPE_KMS_KEY_ID", "AIRFLOW_VAR_SECUREPIPE_TRAIN_CLI",
]


def test_every_component_is_there():
    assert set(SERVICES) >= {*AIRFLOW_SERVICES, "postgres", "redis", "kms", "marquez"}


def test_airflow_services_share_one_configuration():
    for name in AIRFLOW_SERVICES:
        env = SERVICES[name]["environment"]
        missing = [key for key in SHARED if key not in env]
        assert not missing, f"{name} lacks {missing}"
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == SERVICES["scheduler"]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"]
        assert env["AIRFLOW__API__BASE_URL"].startswith("http://api-server:")
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"


def test_db_and_broker_point_at_the_compose_services():
    env = SERVICES["scheduler"]["environment"]
    assert "@postgres:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")


def test_gpu_worker_serves_gpu_queue_with_device_reservation():
    worker = SERVICES["worker-gpu"]
    command = worker["command"]
    assert command[command.index("-q") + 1] == "gpu"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    cpu = SERVICES["worker-cpu"]["command"]
    assert cpu[cpu.index("-q") + 1] == "default"
    # Two workers on one host need distinct log-server ports (AIRFLOW3-RECIPE).
    assert worker["environment"].get("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT")


def test_gpu_pool_and_training_env_match_the_dag():
    assert "pools set gpu" in " ".join(SERVICES["airflow-init"]["command"])
    assert SERVICES["scheduler"]["environment"]["AIRFLOW_VAR_SECUREPIPE_TRAIN_CLI"] == "/opt/venv-train/bin/securepipe"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "/opt/venv-train" in dockerfile and "requirements-train.txt" in dockerfile


def test_no_secret_is_written_in_the_file_and_ports_bind_loopback():
    for name in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert SERVICES["scheduler"]["environment"][name].startswith("${"), name
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_lineage_goes_to_marquez():
    transport = yaml.safe_load(SERVICES["scheduler"]["environment"]["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    assert transport["type"] == "http" and "marquez" in transport["url"]


def test_erasure_requests_emit_no_lineage_events():
    """Their run conf holds the subject's identifier; the compose file and the test stack agree."""
    from securepipe.demo.stack import ERASURE_LINEAGE_POLICY

    policy = yaml.safe_load(SERVICES["scheduler"]["environment"]["AIRFLOW__OPENLINEAGE__EMISSION_POLICY"])
    assert policy == yaml.safe_load(ERASURE_LINEAGE_POLICY)
    assert policy[0]["scope"] == {"dag_id": "erasure_request"} and policy[0]["controls"]["emit"] is False


def test_the_api_server_reaches_kms_to_seal_erasure_requests():
    env = SERVICES["api-server"]["environment"]
    assert env["AWS_ENDPOINT_URL_KMS"] == "http://kms:5000" and "AIRFLOW_VAR_SECUREPIPE_KMS_KEY_ID" in env


def test_every_shipped_policy_loads():
    """The policies an operator can pick by name (the Dockerfile copies policies/) are valid."""
    from securepipe.pii import load_policy

    shipped = sorted((REPO / "policies").glob("*.yaml"))
    assert shipped
    for path in shipped:
        load_policy(str(path))
