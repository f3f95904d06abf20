"""deploy/kubernetes/ checked statically (no cluster here) against the DAG's tasks, like the compose file."""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "secure_training.py"
# The DAG folder's helper, loaded from its file (standard library only; no DAG folder on sys.path needed).
_spec = importlib.util.spec_from_file_location("dag_kubernetes", REPO / "dags" / "securepipe_dags" / "kubernetes.py")
_kubernetes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_kubernetes)
POD_TEMPLATE_DIR, POD_TEMPLATES, pod_template = _kubernetes.POD_TEMPLATE_DIR, _kubernetes.POD_TEMPLATES, _kubernetes.pod_template
TEMPLATES = {task: yaml.safe_load((POD_TEMPLATE_DIR / name).read_text()) for task, name in POD_TEMPLATES.items()}
POLICY = yaml.safe_load((POD_TEMPLATE_DIR / "networkpolicy.yaml").read_text())
GIB = 1 << 30


def _task_options(dag_file: Path) -> dict[str, dict[str, ast.expr]]:
    """Keyword arguments of each @task(...) in the DAG file, by function name."""
    options = {}
    for node in ast.walk(ast.parse(dag_file.read_text())):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", None) == "task":
                    options[node.name] = {k.arg: k.value for k in decorator.keywords}
    return options


def _quantity(value) -> float:
    """A Kubernetes quantity (1Gi, 1536Mi, "2", 500m) as a number of bytes or cores."""
    text = str(value)
    for suffix, factor in (("Gi", GIB), ("Mi", 1 << 20), ("m", 1e-3)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def _selects(selector: dict, labels: dict) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", "only In is evaluated here"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _base(template: dict) -> dict:
    return next(c for c in template["spec"]["containers"] if c["name"] == "base")


def test_the_executor_loads_both_templates():
    """What KubernetesExecutor does with a pod_template_file: the provider's own parser."""
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    for name in POD_TEMPLATES.values():
        pod = PodGenerator.deserialize_model_file(str(POD_TEMPLATE_DIR / name))
        assert [c.name for c in pod.spec.containers] == ["base"]
        assert pod.spec.containers[0].resources.requests["memory"]


def test_the_dag_points_mask_and_train_at_their_templates():
    options = _task_options(DAG_FILE)
    for task in ("mask_shard", "train_model"):
        config = options[task]["executor_config"]
        assert ast.unparse(config) == f"pod_template({task!r})", task
        assert Path(pod_template(task)["pod_template_file"]).is_file()
    assert set(POD_TEMPLATES) == {"mask_shard", "train_model"}
    # The image carries the templates where executor_config says they are.
    assert "COPY deploy ./deploy" in (REPO / "Dockerfile").read_text()


def test_the_gpu_goes_to_the_task_on_the_gpu_queue_and_nowhere_else():
    options = _task_options(DAG_FILE)
    assert ast.literal_eval(options["train_model"]["queue"]) == "gpu"
    assert "queue" not in options["mask_shard"]
    train = _base(TEMPLATES["train_model"])["resources"]
    assert train["limits"]["nvidia.com/gpu"] == 1
    assert train["requests"].get("nvidia.com/gpu", 1) == train["limits"]["nvidia.com/gpu"]  # extended: equal
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (
        TEMPLATES["train_model"]["spec"]["tolerations"])
    mask = _base(TEMPLATES["mask_shard"])["resources"]
    assert "nvidia.com/gpu" not in {**mask["requests"], **mask.get("limits", {})}
    assert "tolerations" not in TEMPLATES["mask_shard"]["spec"]


@pytest.mark.parametrize("task", list(POD_TEMPLATES))
def test_requests_fit_within_limits(task):
    resources = _base(TEMPLATES[task])["resources"]
    requests, limits = resources["requests"], resources["limits"]
    assert _quantity(requests["cpu"]) >= 1
    for name in ("memory", "ephemeral-storage"):
        assert _quantity(requests[name]) <= _quantity(limits[name]), name
    # The memory-backed /tmp counts against the memory limit: the limit must hold it on top of the request.
    tmp = next(v for v in TEMPLATES[task]["spec"]["volumes"] if v["name"] == "tmp")["emptyDir"]
    assert tmp["medium"] == "Memory"
    assert _quantity(requests["memory"]) + _quantity(tmp["sizeLimit"]) <= _quantity(limits["memory"])


def test_mask_requests_the_per_task_memory_target_on_one_core():
    """One shard per task on one core (pipeline.IN_TASK_WORKERS); 1 GiB is the per-task memory target."""
    from securepipe.pipeline import IN_TASK_WORKERS

    requests = _base(TEMPLATES["mask_shard"])["resources"]["requests"]
    assert _quantity(requests["cpu"]) == IN_TASK_WORKERS
    assert _quantity(requests["memory"]) == GIB


@pytest.mark.parametrize("task", list(POD_TEMPLATES))
def test_pods_run_confined(task):
    spec = TEMPLATES[task]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 50000
    container = _base(TEMPLATES[task])["securityContext"]
    assert container["readOnlyRootFilesystem"] is True and container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    # Every writable path is a declared volume (the root file system is read-only).
    mounted = {m["name"] for m in _base(TEMPLATES[task])["volumeMounts"]}
    assert mounted == {v["name"] for v in spec["volumes"]}


def test_the_network_policy_confines_both_pods():
    spec = POLICY["spec"]
    for task, template in TEMPLATES.items():
        assert _selects(spec["podSelector"], template["metadata"]["labels"]), task
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"] and spec["ingress"] == []


def test_the_selector_check_would_see_a_pod_left_out():
    assert not _selects(POLICY["spec"]["podSelector"], {"securepipe.io/task": "ingest"})
    assert not _selects({"matchLabels": {"a": "b"}}, {"a": "c"})


def test_egress_is_dns_the_api_server_kms_and_storage_only():
    opened = set()
    for rule in POLICY["spec"]["egress"]:
        # A rule without `to` or without `ports` would open every destination or every port.
        assert rule.get("to") and rule.get("ports"), rule
        ports = {(p["protocol"], p["port"]) for p in rule["ports"]}
        blocks = [peer["ipBlock"]["cidr"] for peer in rule["to"] if "ipBlock" in peer]
        if blocks:
            assert ports == {("TCP", 443)}, "address ranges are for the KMS and S3 endpoints (HTTPS) only"
            assert all(not cidr.endswith("/0") and cidr.split(".")[0] == "10" for cidr in blocks), blocks
        opened |= ports
    assert opened == {("UDP", 53), ("TCP", 53), ("TCP", 8080), ("TCP", 443)}
