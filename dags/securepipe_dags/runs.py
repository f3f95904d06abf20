"""Turn a DAG run's context into the plain settings every securepipe stage takes.

`prepare` runs once per DAG run and returns a dict of builtins (it goes to XCom, so
it holds parameters, URIs and names only, never data). `settings_for` rebuilds the
full `RunSettings` inside each task, resolving connections there, so no credential
ever passes through XCom.
"""
from __future__ import annotations

import json
from pathlib import Path

from securepipe.errors import InputError
from securepipe.pipeline import safe_run_id
from securepipe_dags import settings



def _trigger(context) -> dict:
    dag_run = context["dag_run"]
    trigger = {"run_type": str(getattr(dag_run, "run_type", "unknown"))}
    triggered_by = getattr(dag_run, "triggering_user_name", None)
    if triggered_by:
        trigger["user"] = str(triggered_by)
    events = context.get("triggering_asset_events") or {}
    if events:
        trigger["asset_events"] = {str(asset): len(evts) for asset, evts in events.items()}
    return trigger


def _within(uri: str, root_uri: str) -> bool:
    """True when `uri` lies under `root_uri`, after resolving `..` and links for file://."""
    if uri.startswith("file://") and root_uri.startswith("file://"):
        path = Path(uri[len("file://"):]).resolve()
        root = Path(root_uri[len("file://"):]).resolve()
        return path == root or root in path.parents
    return uri.startswith(root_uri.rstrip("/") + "/") and "/../" not in uri and not uri.endswith("/..")


def prepare(context) -> dict:
    params = dict(context["params"])
    landing = settings.landing_uri()
    input_uri = params.get("input_uri") or landing
    landing_root = settings.variable("securepipe_landing_root", landing.rsplit("/", 1)[0])
    if not _within(input_uri, landing_root):
        # Path traversal or a file outside the landing zone: refuse without echoing the path.
        raise InputError("input_uri", "input must lie inside the configured landing zone")
    policy_dir = Path(settings.variable("securepipe_policy_dir", str(settings.REPO_ROOT / "policies")))
    policy_name = params["masking_policy"]
    policy_path = "" if policy_name == "default" else str(policy_dir / f"{policy_name}.yaml")
    if policy_path and not Path(policy_path).is_file():
        raise InputError(f"{policy_name}.yaml", "masking policy not found in the policy directory")
    accept_reference = bool(params.get("accept_new_reference", False))
    reason = str(params.get("reference_reason") or "").strip()
    if accept_reference and not reason:
        raise InputError("reference_reason", "accepting a new data reference needs a reason")
    run_id = safe_run_id(context["run_id"])
    return {
        "run_id": run_id,
        "airflow_run_id": context["run_id"],
        "dag_id": context["dag"].dag_id,
        "dataset": params["dataset"],
        "input_uri": input_uri,
        "storage_uri": settings.storage_uri(),
        "state_dir": str(settings.state_dir()),
        "kms_key_id": settings.kms_key_id(),
        "policy_path": policy_path,
        "policy_name": policy_name,
        "label": params["label_column"],
        "target_epsilon": float(params["target_epsilon"]),
        "delta": float(params["delta"]),
        "epochs": int(params["epochs"]),
        "batch_size": int(params["batch_size"]),
        "rows_per_shard": int(params["rows_per_shard"]),
        "max_mia_auc": float(params["max_mia_auc"]),
        "nonprivate_baseline": bool(params["nonprivate_baseline"]),
        "accept_new_reference": accept_reference,
        "reference_reason": reason,
        "train_cli": settings.train_cli(),
        "budgets": json.loads(settings.variable("securepipe_privacy_budgets", "{}")),
        "trigger": _trigger(context),
    }


def settings_for(run: dict):
    from securepipe.pipeline import RunSettings

    return RunSettings.from_dict(run, storage_root=settings.storage_root(run["storage_uri"]), aws=settings.aws_settings())


def erasure_settings(context):
    from securepipe.erasure import ErasureSettings

    run_id = safe_run_id(context["run_id"])
    return ErasureSettings(
        erasure_run_id=run_id,
        dataset=context["params"]["dataset"],
        state_dir=settings.state_dir(),
        kms_key_id=settings.kms_key_id(),
        aws=settings.aws_settings(),
        storage_root=settings.storage_root(),
        landing_uri=settings.landing_uri(),
        resolve_uri=lambda uri: Path(uri[7:]) if uri.startswith("file://") else settings.storage_root(uri),
    )
