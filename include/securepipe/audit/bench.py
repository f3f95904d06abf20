"""`securepipe bench audit`: audit-log and PII-scan throughput, each against a baseline run alongside.

Why: speed is checked by ratios measured in one run on one machine, not by timed
tests. Baselines: a bare fsync'd JSON-line append (what any log costs) for the
audit append; the tokenizer alone (no hashing, no lookup) for the PII scan.
"""
from __future__ import annotations

import json
import os
import random
import tempfile
import time
from pathlib import Path


def _timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def run_bench(*, entries: int = 2000, lines: int = 20000, values: int = 5000, seed: int = 0) -> dict:

    from securepipe.audit.log import AuditLog, verify_log
    from securepipe.audit.pii_scan import SensitiveValueIndex, tokens
    from securepipe.audit.signing import SigningKey

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="securepipe-bench-") as tmp:
        root = Path(tmp)
        key = SigningKey.from_secret(os.urandom(32))  # KMS unwraps it once per process: not what this measures
        log = AuditLog(root / "audit.jsonl", key=key)
        payload = {"run_id": "bench", "rows": 1000, "sha256": "ab" * 32}

        def audit_appends():
            for i in range(entries):
                log.append("bench.event", {**payload, "i": i})

        def bare_appends():
            with open(root / "bare.jsonl", "ab") as handle:
                for i in range(entries):
                    handle.write(json.dumps({**payload, "i": i}).encode() + b"\n")
                    handle.flush()
                    os.fsync(handle.fileno())

        bare_s, append_s = _timed(bare_appends), _timed(audit_appends)
        verify_s = _timed(lambda: verify_log(log.path, key=key))

        sensitive = [f"555-{rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}" for _ in range(values)]
        words = ["patient", "seen", "for", "follow", "up", "bp", "stable", "rows", "masked", "INFO", "task"]
        text = [" ".join(rng.choice(words) for _ in range(12)) + (f" call {sensitive[i % values]}" if i % 100 == 0
                                                                   else "") for i in range(lines)]
        index_s = _timed(lambda: SensitiveValueIndex.from_values(sensitive))
        index = SensitiveValueIndex.from_values(sensitive)
        found = []
        scan_s = _timed(lambda: found.append(sum(index.count_matches(line) for line in text)))
        tokenize_s = _timed(lambda: [tokens(line) for line in text])
    return {
        "bench": "audit",
        "entries": entries,
        "append_per_s": round(entries / append_s, 1),
        "baseline_bare_fsync_append_per_s": round(entries / bare_s, 1),
        "append_cost_ratio": round(append_s / bare_s, 2),
        "verify_entries_per_s": round(entries / verify_s, 1),
        "scan_lines": lines,
        "scan_values_indexed": index.indexed,
        "index_build_s": round(index_s, 4),
        "scan_lines_per_s": round(lines / scan_s, 1),
        "baseline_tokenize_lines_per_s": round(lines / tokenize_s, 1),
        "scan_cost_ratio": round(scan_s / tokenize_s, 2),
        "scan_matches": found[0],
        "scan_expected_matches": len(range(0, lines, 100)),
    }
