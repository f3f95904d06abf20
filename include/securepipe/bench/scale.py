"""`securepipe bench scale`: what a run of 10M or 100M rows would take on 8, 32 or 128 workers.

Why: a claim about scale must come from figures measured on the machine at hand,
put through a model whose arithmetic can be checked. This module does both:

- `measure` runs the pipeline's own stages (`securepipe.pipeline`: ingest,
  mask_shard, finalize_masking, train; no Airflow) on a generated table with
  long clinical notes, once at one shard's rows and once at `rows`, with KMS (the
  configured one or a private emulator) and local storage. Per serial stage it
  fits seconds = fixed + per_row x rows through the two points (training through
  `rows` and a larger replica of the masked dataset); a mask shard's cost is taken
  at the DAG's shard size. The table is `securepipe.synth`'s patients with
  each note extended to about `note_chars` characters by notes from
  `securepipe.pii.corpus` (identifiers in other formats and names from other lists:
  international and extension phones, 2-series and 19-digit cards, MRNs, dates in
  several styles, IPs, relatives and clinicians).
- `project` is the model (Amdahl's law, with the mapped stage quantized into
  waves of shards): ingest, finalize_masking and train are serial; mask_shard
  runs `workers` shards at a time; every task also pays a start-up cost. Cost is
  given in worker-hours (price-free) and at a price per worker-hour that the
  caller sets.

Threat model: the table is synthetic; the output holds timings and counts only.
"""
from __future__ import annotations

import math
import os
import random
import subprocess  # nosec B404
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

TARGET_ROWS = (10_000_000, 100_000_000)
WORKERS = (8, 32, 128)
WARM_UP_ROWS = 50
# An assumed on-demand price of one 2-vCPU, 8 GiB worker (the size of this machine); set your own.
DEFAULT_WORKER_HOUR_USD = 0.096


@dataclass(frozen=True)
class LinearCost:
    """seconds = fixed_s + per_row_s x rows."""

    fixed_s: float
    per_row_s: float

    @classmethod
    def through(cls, small_rows: int, small_s: float, large_rows: int, large_s: float) -> LinearCost:
        """The line through two measurements; a negative intercept (noise) is clamped to zero and the
        slope then taken through the origin and the larger measurement."""
        if large_rows <= small_rows:
            raise ValueError("the second measurement must be on more rows")
        per_row = (large_s - small_s) / (large_rows - small_rows)
        fixed = small_s - per_row * small_rows
        if fixed < 0 or per_row < 0:
            return cls(0.0, large_s / large_rows)
        return cls(fixed, per_row)

    def seconds(self, rows: int) -> float:
        return self.fixed_s + self.per_row_s * rows


@dataclass(frozen=True)
class ScaleInputs:
    """What the projection needs, all measured by `measure` (or given, for a what-if)."""

    rows_per_shard: int
    mask_shard_s: float  # one mapped mask task on a full shard, one worker
    task_startup_s: float  # per task: a fresh interpreter importing the masking stage
    serial: dict[str, LinearCost]  # per serial stage


def project(inputs: ScaleInputs, rows: int, workers: int, worker_hour_usd: float = DEFAULT_WORKER_HOUR_USD) -> dict:
    """Wall time and cost of one run of `rows` rows on `workers` workers.

    wall = serial + waves x (mask_shard_s + task_startup_s), where serial is the sum of
    the serial stages at `rows` plus one start-up each, and waves = ceil(shards / workers)
    (a last, partial shard is costed as a full one).
    Amdahl's bound on the speed-up over one worker, 1 / (s + (1 - s) / workers) with s the
    serial share of the one-worker wall time, is given beside the modelled speed-up
    (which is lower when the last wave is not full).
    """
    if rows < 1 or workers < 1:
        raise ValueError("rows and workers must be at least 1")
    shards = math.ceil(rows / inputs.rows_per_shard)
    per_task = inputs.mask_shard_s + inputs.task_startup_s
    stage_s = {name: cost.seconds(rows) + inputs.task_startup_s for name, cost in inputs.serial.items()}
    serial_s = sum(stage_s.values())
    waves = math.ceil(shards / workers)
    mask_wall_s = waves * per_task
    wall_s = serial_s + mask_wall_s
    one_worker_s = serial_s + shards * per_task
    serial_share = serial_s / one_worker_s
    busy_worker_s = one_worker_s  # every task runs on one worker; a fleet sized per task pays only this
    return {
        "rows": rows,
        "workers": workers,
        "shards": shards,
        "waves": waves,
        "serial_s": round(serial_s, 1),
        "serial_stages_s": {name: round(s, 1) for name, s in stage_s.items()},
        "mask_wall_s": round(mask_wall_s, 1),
        "wall_s": round(wall_s, 1),
        "wall_h": round(wall_s / 3600, 2),
        "speedup_vs_one_worker": round(one_worker_s / wall_s, 2),
        "amdahl_bound": round(1 / (serial_share + (1 - serial_share) / workers), 2),
        "serial_share_one_worker": round(serial_share, 4),
        "worker_hours_held": round(workers * wall_s / 3600, 2),
        "worker_hours_busy": round(busy_worker_s / 3600, 2),
        "usd_held": round(workers * wall_s / 3600 * worker_hour_usd, 2),
        "usd_busy": round(busy_worker_s / 3600 * worker_hour_usd, 2),
    }


def projections(inputs: ScaleInputs, worker_hour_usd: float = DEFAULT_WORKER_HOUR_USD) -> list[dict]:
    return [project(inputs, rows, workers, worker_hour_usd) for rows in TARGET_ROWS for workers in WORKERS]


# -- measurement -------------------------------------------------------------------------------
def long_notes_table(rows: int, note_chars: int, seed: int = 0):
    """`securepipe.synth` patients whose notes are extended to >= `note_chars` with corpus notes."""
    from securepipe import synth
    from securepipe.pii.corpus import generate_notes

    frame = synth.generate_patients(rows, seed=seed)
    pool = [note["text"] for note in generate_notes(max(200, rows // 4), seed=seed + 1)]
    rng = random.Random(seed)
    notes = []
    for note in frame["notes"]:
        parts, length = [note], len(note)
        while length < note_chars:
            extra = rng.choice(pool)
            parts.append(extra)
            length += 1 + len(extra)
        notes.append(" ".join(parts))
    frame["notes"] = notes
    return frame


def _task_startup_s() -> float:
    """Seconds for a fresh interpreter to import the masking stage (best of three): the least a task
    process pays before its first row (Airflow's own task start-up comes on top)."""
    code = "import pandas, pyarrow, securepipe.pipeline, securepipe.pii.mask, securepipe.crypto.envelope"
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603 # nosec B603
        best = min(best, time.perf_counter() - start)
    return best


def _run_stages(work: Path, frame, rows_per_shard: int, aws, key_id: str) -> tuple:
    """Seconds of each masking stage of one run on `frame` and each mask shard's (seconds, rows);
    the run's settings and the masked dataset's record come back for training."""
    from securepipe import pipeline

    work.mkdir(parents=True)
    source = work / "input.parquet"
    frame.to_parquet(source, index=False)
    run = pipeline.RunSettings(
        run_id="bench-scale", dataset="bench", input_uri=str(source), storage_root=work / "storage",
        state_dir=work / "state", kms_key_id=key_id, aws=aws, rows_per_shard=rows_per_shard,
    )
    seconds: dict = {}
    start = time.perf_counter()
    shards = pipeline.ingest(run)
    seconds["ingest"] = time.perf_counter() - start
    masked, shard_s = [], []
    for shard in shards:
        start = time.perf_counter()
        masked.append(pipeline.mask_shard(run, shard))
        shard_s.append((time.perf_counter() - start, shard["rows"]))
    start = time.perf_counter()
    dataset = pipeline.finalize_masking(run, masked)
    seconds["finalize_masking"] = time.perf_counter() - start
    return {"stages": seconds, "shards": shard_s}, run, dataset


def _train_seconds(run, dataset: dict, rows: int, train_cli: str) -> float:
    """Seconds of the train stage on the masked dataset replicated to `rows` rows.

    Replicated, because masking enough rows to see training's per-row cost would take far
    longer than training them, and training's cost per row does not depend on which rows."""
    import io

    import pandas as pd

    from securepipe import pipeline
    from securepipe.crypto import decrypt_to_bytes, encrypt_bytes

    if rows != dataset["rows"]:
        frame = pd.read_parquet(io.BytesIO(decrypt_to_bytes(run.path(dataset["key"]),
                                                             expected_context=dataset["context"])))
        frame = pd.concat([frame] * math.ceil(rows / len(frame)), ignore_index=True).iloc[:rows]
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        key = f"{dataset['key']}.x{rows}"
        info = encrypt_bytes(buffer.getvalue(), run.path(key), key_id=run.kms_key_id, context=dataset["context"])
        dataset = {**dataset, "key": key, "rows": rows, "sha256": info["sha256"]}
    run.train_cli = train_cli
    start = time.perf_counter()
    pipeline.train(run, dataset)
    return time.perf_counter() - start


def _train_cli() -> str | None:
    """The training environment's CLI next to this checkout, if it is set up (it is a separate venv)."""
    cli = Path(__file__).resolve().parents[3] / ".venv-train" / "bin" / "securepipe"
    return str(cli) if cli.exists() else None


def measure(rows: int, rows_per_shard: int, note_chars: int, *, train_rows: int | None = None) -> tuple[ScaleInputs, dict]:
    """Run the stages at one shard's rows and at `rows`; return the model's inputs and the raw figures.

    A warm-up run on a few rows goes first, so one-time costs of this process (imports, the
    detector's lexicons) land in no measurement. Training (when `train_rows` is given and the
    training environment is set up) is timed on the larger run's masked dataset as it is and
    replicated to `train_rows` rows: at benchmark sizes its fixed cost (process and TensorFlow
    start-up, graph tracing) would hide the per-row cost.
    """
    from securepipe.kms_emulator import configured_or_private_kms

    if rows < 2 * rows_per_shard:
        raise ValueError("--rows must be at least two shards (the second point of each fit)")
    if train_rows is not None and train_rows <= rows:
        raise ValueError("--train-rows must be more than --rows (the second point of training's fit)")
    train_cli = _train_cli() if train_rows else None
    train_s = {}
    with configured_or_private_kms() as (aws, key_id), tempfile.TemporaryDirectory(prefix="securepipe-scale-") as tmp:
        _run_stages(Path(tmp) / "warm-up", long_notes_table(WARM_UP_ROWS, note_chars, seed=0), WARM_UP_ROWS,
                    aws, key_id)
        small, _, _ = _run_stages(Path(tmp) / "small", long_notes_table(rows_per_shard, note_chars, seed=1),
                                  rows_per_shard, aws, key_id)
        frame = long_notes_table(rows, note_chars, seed=2)
        mean_note_chars = float(frame["notes"].str.len().mean())
        large, run, dataset = _run_stages(Path(tmp) / "large", frame, rows_per_shard, aws, key_id)
        if train_cli:
            for size in (dataset["rows"], train_rows):
                train_s[size] = _train_seconds(run, dataset, size, train_cli)
    full_shards = [s for s, n in small["shards"] + large["shards"] if n == rows_per_shard]
    mask_shard_s = sorted(full_shards)[len(full_shards) // 2]  # the median full shard
    serial = {
        name: LinearCost.through(rows_per_shard, small["stages"][name], rows, large["stages"][name])
        for name in ("ingest", "finalize_masking")
    }
    if train_s:
        (few, few_s), (many, many_s) = sorted(train_s.items())
        serial["train"] = LinearCost.through(few, few_s, many, many_s)
    inputs = ScaleInputs(rows_per_shard, mask_shard_s, _task_startup_s(), serial)
    measured = {
        "rows": [rows_per_shard, rows],
        "mean_note_chars": round(mean_note_chars),
        "stage_s": {"small": _rounded(small["stages"]), "large": _rounded(large["stages"])},
        "mask_shard_s": [round(s, 2) for s, _ in small["shards"] + large["shards"]],
        "mask_rows_per_s": round(rows_per_shard / mask_shard_s, 1),
        "train_s": {str(size): round(s, 2) for size, s in train_s.items()},
    }
    return inputs, measured


def _rounded(seconds: dict) -> dict:
    return {name: round(s, 2) for name, s in seconds.items()}


def describe(inputs: ScaleInputs) -> dict:
    return {**asdict(inputs), "task_startup_s": round(inputs.task_startup_s, 3),
            "mask_shard_s": round(inputs.mask_shard_s, 2),
            "serial": {name: {"fixed_s": round(c.fixed_s, 3), "per_row_us": round(c.per_row_s * 1e6, 3)}
                       for name, c in inputs.serial.items()}}


def run_bench(rows: int, rows_per_shard: int, note_chars: int, *, train_rows: int | None,
              worker_hour_usd: float = DEFAULT_WORKER_HOUR_USD) -> dict:
    inputs, measured = measure(rows, rows_per_shard, note_chars, train_rows=train_rows)
    return {
        "bench": "scale",
        "measured": measured,
        "inputs": describe(inputs),
        "worker_hour_usd": worker_hour_usd,
        "projection": projections(inputs, worker_hour_usd),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
