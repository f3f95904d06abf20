"""The embedded default, end to end: local KMS emulator, SQLite, LocalExecutor, file storage.

The emulator's keys live only as long as its process, so a new demo starts from
fresh storage and state (ciphertexts under a vanished key cannot be read back:
that is crypto-shredding at work, not a bug).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

from securepipe import kms_emulator
from securepipe.demo.stack import REPO_ROOT, AirflowStack, StackConfig

DAG_ID = "secure_training"


def _home(args) -> Path:
    return Path(args.home or os.environ.get("AIRFLOW_HOME") or REPO_ROOT / ".airflow").resolve()


def embedded_env(home: Path, emulator_url: str, key_id: str) -> dict[str, str]:
    """Connections and variables as environment entries: nothing secret is stored in the metadata DB."""
    # No credentials in the connection: the emulator's dummy ones come from the standard AWS
    # variables, as real ones would come from an instance role.
    # Bounded timeouts for s3:// storage (s3fs): a hung endpoint fails a task in seconds, not minutes.
    connection = {"conn_type": "aws", "extra": {
        "endpoint_url": emulator_url, "region_name": "us-east-1",
        "config_kwargs": {"connect_timeout": 5, "read_timeout": 20, "retries": {"max_attempts": 2}}}}
    return {
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
        "AIRFLOW_VAR_SECUREPIPE_KMS_KEY_ID": key_id,
        "AIRFLOW_VAR_SECUREPIPE_STORAGE_URI": f"file://{home / 'storage'}",
        "AIRFLOW_VAR_SECUREPIPE_STATE_DIR": str(home / "securepipe-state"),
        "SECUREPIPE_STATE_DIR": str(home / "securepipe-state"),  # the CLI and the Compliance page read it
        "AIRFLOW_VAR_SECUREPIPE_LANDING_URI": f"file://{home / 'landing' / 'patients.csv'}",
        "AIRFLOW_VAR_SECUREPIPE_TRAIN_CLI": str(REPO_ROOT / ".venv-train" / "bin" / "securepipe"),
        **kms_emulator.client_env(emulator_url, key_id),
    }


def start_embedded(home: Path, *, host: str = "127.0.0.1", port: int | None = None, reset: bool = True):
    """Start the emulator and the Airflow components; return (stack, emulator)."""
    home.mkdir(parents=True, exist_ok=True)
    if reset:
        for name in ("storage", "securepipe-state"):
            shutil.rmtree(home / name, ignore_errors=True)
    emulator = kms_emulator.start_emulator(log_path=home / "kms-emulator.log")
    try:
        kms_emulator.create_key(emulator.endpoint_url)
        config = StackConfig(
            home=home,
            api_port=port or kms_emulator.free_port(host),
            host=host,
            sql_alchemy_conn=f"sqlite:///{home / 'airflow.db'}",
            executor="LocalExecutor",
            parallelism=4,
            extra_env=embedded_env(home, emulator.endpoint_url, kms_emulator.DEMO_KEY_ALIAS),
        )
        stack = AirflowStack(config)
        stack.migrate()
        stack.run_cli("pools", "set", "gpu", "1", "GPU slots: one training task per GPU")
        stack.start_core()
    except BaseException:
        emulator.stop()
        raise
    return stack, emulator


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def _dataset_name(path: Path) -> str:
    """A dataset name the DAG accepts, from the file's name (the ledger and storage are per dataset)."""
    name = re.sub(r"[^a-z0-9_-]+", "-", path.stem.lower()).strip("-_")
    return (name if name[:1].isalpha() else f"d-{name}")[:64] or "dataset"


def _stage_input(args, landing_dir: Path) -> tuple[Path, dict]:
    """The user's table, checked (readable, label present) and copied into the landing zone,
    and the run settings it needs. Raises InputError naming file and column, never a value."""
    from securepipe.errors import InputError
    from securepipe.ingest import ReadLimits, input_format, iter_frames

    source = Path(args.input).expanduser().resolve()
    fmt = input_format(source)
    if not args.label:
        raise InputError(source.name, "--label names the column to predict (needed with --input)")
    next(iter_frames(source, required_columns=[args.label], limits=ReadLimits(chunk_rows=100)))
    landing = landing_dir / f"input.{fmt}"
    landing_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, landing)
    return landing, {"dataset": _dataset_name(source), "label_column": args.label,
                     "masking_policy": args.policy or "default"}


def run_demo(args) -> int:
    from securepipe.progress import Progress
    from securepipe.synth import write_patients

    started = time.monotonic()
    home = _home(args)
    if args.input:
        landing, run_conf = _stage_input(args, home / "landing")
        _step(f"staged {Path(args.input).name} -> {landing} (label {args.label!r}, policy {run_conf['masking_policy']})")
    else:
        landing = home / "landing" / "patients.csv"
        _step(f"generating {args.rows} synthetic patients -> {landing}")
        write_patients(landing, args.rows, seed=args.seed)
        run_conf = {"label_column": args.label or "readmitted", "masking_policy": args.policy or "demo"}
    _step("starting the local KMS emulator and Airflow (SQLite, LocalExecutor)")
    stack, emulator = start_embedded(home)
    try:
        stack.wait_for_dag(DAG_ID)
        conf = {"input_uri": f"file://{landing}", "epochs": args.epochs, "target_epsilon": args.target_epsilon,
                **run_conf}
        run_id = stack.trigger(DAG_ID, conf)
        _step(f"triggered {DAG_ID} run {run_id}; waiting")
        with Progress(DAG_ID, unit="tasks", quiet=args.quiet) as progress:
            state = stack.wait_for_run(DAG_ID, run_id, timeout=args.timeout, progress=progress)
        tasks = stack.task_states(DAG_ID, run_id)
        if state != "success":
            failed = sorted(t for t, s in tasks.items() if s not in ("success", "skipped"))
            print(f"{DAG_ID} run {run_id} ended {state}; tasks not successful: {', '.join(failed)}", file=sys.stderr)
            print(f"task logs: {home / 'logs'}", file=sys.stderr)
            return 1
        manifest = stack.request(
            "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/publish_lineage/xcomEntries/return_value"
        )["value"]
        print_summary(manifest, tasks, home, stack.config.base_url, time.monotonic() - started)
        if args.keep_running:
            _serve_until_interrupted(stack, home)
        return 0
    finally:
        stack.stop()
        emulator.stop()


def print_summary(manifest, tasks: dict, home: Path, base_url: str, seconds: float) -> None:
    from securepipe.demo.summary import render_summary

    if isinstance(manifest, str):
        manifest = json.loads(manifest)
    print(render_summary(manifest, tasks=tasks, home=home, seconds=seconds))


def _serve_until_interrupted(stack: AirflowStack, home: Path) -> None:
    print(f"Airflow UI: {stack.config.base_url}  (user admin; password in {home / 'passwords.json'})")
    print("Ctrl-C stops everything.", flush=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.sigwait({signal.SIGINT, signal.SIGTERM})


def run_up(args) -> int:
    """The UI on a fresh embedded setup (the emulator's keys are new, so storage and state start empty)."""
    home = _home(args)
    stack, emulator = start_embedded(home, host=args.host, port=args.port)
    try:
        stack.start("triggerer", "triggerer")
        _serve_until_interrupted(stack, home)
    finally:
        stack.stop()
        emulator.stop()
    return 0
