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
