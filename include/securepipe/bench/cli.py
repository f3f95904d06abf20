"""`securepipe eval pii`: score free-text PII detection on a labeled corpus, against Presidio.

Imports only the standard library at module level (the CLI also runs in the training
venv, which has no Presidio or spaCy); the handler imports what it needs.
Threat model: what is printed is counts and ratios. `--misses` writes corpus text to the
file named, and says so on stderr.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from securepipe.progress import add_quiet_flag


def _eval_pii(args) -> int:
    from securepipe.bench.corpus_format import load_corpus
    from securepipe.bench.pii_eval import PresidioBaseline, SecurePipeDetector, evaluate, format_table
    from securepipe.errors import InputError
    from securepipe.progress import Progress

    if args.limit is not None and args.limit < 1:
        raise InputError("--limit", "must be at least 1")
    corpus = load_corpus(args.corpus)
    corpus.split_path(args.split)  # an unknown split fails before any model loads
    systems = [SecurePipeDetector()] if args.no_baseline else [SecurePipeDetector(), PresidioBaseline()]
    total = corpus.count_documents(args.split)
    progress = Progress(f"eval {corpus.name}/{args.split}", total=min(total, args.limit or total), unit="texts",
                        quiet=args.quiet)
    if args.misses is None:
        with progress:
            result = evaluate(corpus, args.split, systems, limit=args.limit, progress=progress)
    else:
        from securepipe.storage import atomic_write

        print(f"securepipe: warning: {args.misses} will contain corpus text (missed spans and wrong "
              "predictions with their context); keep it where the corpus itself may be", file=sys.stderr)
        with progress, atomic_write(Path(args.misses), "w") as misses:
            result = evaluate(corpus, args.split, systems, limit=args.limit, misses=misses, progress=progress)
    print(json.dumps(result) if args.json else format_table(result))
    return 0


def _bench_scale(args) -> int:
    from securepipe.bench.scale import run_bench
    from securepipe.errors import SecurePipeError

    if args.rows_per_shard < 1 or args.note_chars < 0 or args.rows < 2 * args.rows_per_shard:
        raise SecurePipeError("--rows must be at least twice --rows-per-shard (>= 1), --note-chars >= 0")
    if not args.no_train and args.train_rows <= args.rows:
        raise SecurePipeError("--train-rows must be more than --rows")
    print(json.dumps(run_bench(args.rows, args.rows_per_shard, args.note_chars,
                               train_rows=None if args.no_train else args.train_rows,
                               worker_hour_usd=args.worker_hour_usd)))
    return 0


def register(commands, bench) -> None:
    evaluation = commands.add_parser("eval", help="score detection on labeled corpora (docs/PII-EVAL.md)")
    sub = evaluation.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    pii = sub.add_parser("pii", help="recall, precision, F2 and speed of free-text PII detection, and Presidio's")
    pii.add_argument("--corpus", required=True, help="corpus directory: corpus.json and one JSONL file per split")
    pii.add_argument("--split", default="test", help="split to score (default: test)")
    pii.add_argument("--limit", type=int, default=None, help="score only the first N texts of the split")
    pii.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    pii.add_argument("--no-baseline", action="store_true", help="skip Presidio")
    pii.add_argument("--misses", default=None, metavar="FILE",
                     help="write our missed gold spans and wrong predictions, with context, as JSONL "
                          "(contains corpus text)")
    add_quiet_flag(pii)
    pii.set_defaults(func=_eval_pii)
    from securepipe.bench.scale import DEFAULT_WORKER_HOUR_USD  # standard library only at its top

    scale = bench.add_parser("scale", help="measure per-shard and serial-stage costs; project 10M/100M rows "
                                           "on 8/32/128 workers (Amdahl)")
    scale.add_argument("--rows", type=int, default=10_000, help="rows of the larger measured run (default 10000)")
    scale.add_argument("--rows-per-shard", type=int, default=5000, help="shard size, as the DAG's (default 5000)")
    scale.add_argument("--note-chars", type=int, default=600, help="length each note is extended to (default 600)")
    scale.add_argument("--train-rows", type=int, default=100_000,
                       help="rows of the replicated masked dataset training is also timed on (default 100000)")
    scale.add_argument("--no-train", action="store_true", help="leave training out (it needs .venv-train)")
    scale.add_argument("--worker-hour-usd", type=float, default=DEFAULT_WORKER_HOUR_USD,
                       help=f"price of one worker-hour for the cost columns (default {DEFAULT_WORKER_HOUR_USD}, "
                            "an assumption)")
    scale.add_argument("--json", action="store_true", help="print one JSON object (the only output format)")
    scale.set_defaults(func=_bench_scale)
