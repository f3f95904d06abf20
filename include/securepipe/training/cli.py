"""`securepipe train`, `securepipe budget ...`, `securepipe bench dp|mia`: DP training from the shell.

Standard library only at the top: this module is imported by the CLI in both
environments; TensorFlow and dp_accounting load inside the handlers (the training venv),
while `budget` works in the Airflow venv too (the ledger is pure standard library).
`train` prints its one-line JSON summary as the LAST line of stdout (the DAG parses it);
logs go to stderr and carry no record values.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from securepipe.errors import PolicyError


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a finite number > 0")
    return value


def _hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("comma-separated layer widths, e.g. 32,16") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError("layer widths must be >= 1")
    return widths


def _print_json(result: dict) -> int:
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0


def _quiet_tensorflow() -> None:
    # TensorFlow's C++ start-up chatter (CUDA plugin registration) is noise in task logs.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("securepipe").setLevel(logging.INFO)


def _train(args) -> int:
    from securepipe.config import kms_key_id, state_dir
    from securepipe.crypto.cli import parse_context

    _quiet_tensorflow()
    from securepipe.training import pipeline

    encryption = None
    if args.encrypt_model:
        model_context = parse_context(args.model_context)
        if not model_context:
            raise PolicyError("--encrypt-model needs --model-context key=value (binds the model to its run)")
        encryption = pipeline.ModelEncryption(kms_key_id(args.kms_key_id), model_context)
    elif args.model_context or args.kms_key_id:
        raise PolicyError("--model-context and --kms-key-id only apply with --encrypt-model")
    ledger_ids = (args.budget_dataset, args.dataset_version, args.run_id)
    ledger = None
    if any(ledger_ids):
        if not all(ledger_ids):
            raise PolicyError("charging the privacy budget needs --budget-dataset, --dataset-version and --run-id")
        ledger = pipeline.LedgerCharge(str(args.state_dir or state_dir()), *ledger_ids)
    summary = pipeline.train_and_report(
        args.data, args.label, args.target_epsilon, args.out,
        delta=args.delta, epochs=args.epochs, batch_size=args.batch_size, accountant=args.accountant,
        l2_norm_clip=args.l2_norm_clip, learning_rate=args.learning_rate, hidden=args.hidden, seed=args.seed,
        input_context=parse_context(args.context) or None, encryption=encryption, ledger=ledger,
        masking_policy_sha256=args.masking_policy_hash, nonprivate_baseline=args.nonprivate_baseline,
    )
    return _print_json(summary)


def _ledger(args):
    from securepipe.config import state_dir
    from securepipe.training.ledger import PrivacyLedger

    return PrivacyLedger(args.state_dir or state_dir())


def _budget_set(args) -> int:
    return _print_json(_ledger(args).set_budget(args.dataset, args.epsilon, args.delta))


def _budget_charge(args) -> int:
    return _print_json(_ledger(args).charge(args.dataset, args.version, args.run_id, args.epsilon, args.delta))


def _budget_status(args) -> int:
    return _print_json(_ledger(args).status(args.dataset))


def _budget_reset(args) -> int:
    ledger = _ledger(args)
    voided = ledger.reset_version(args.dataset, args.version, reason=args.reason)
    return _print_json({**ledger.status(args.dataset), "voided_now": voided, "version": args.version})


def _bench_dp(args) -> int:
    _quiet_tensorflow()
    from securepipe.training.bench import bench_dp

    return _print_json(bench_dp(rows=args.rows, epochs=args.epochs, repeats=args.repeats,
                                utility_rows=args.utility_rows, utility_epochs=args.utility_epochs,
                                threads=args.threads))


def _bench_mia(args) -> int:
    _quiet_tensorflow()
    from securepipe.training.bench import bench_mia

    return _print_json(bench_mia(rows=args.rows, epochs=args.epochs))


def register(commands, bench) -> None:
    train = commands.add_parser("train", help="train the DP model, evaluate it, write the model and its card")
    train.add_argument("--data", required=True, help="Parquet or CSV file, or the pipeline's encrypted form")
    train.add_argument("--label", required=True, help="0/1 label column; other numeric columns are features")
    train.add_argument("--target-epsilon", required=True, type=_positive_float)
    train.add_argument("--delta", type=_positive_float, help="default min(1e-5, 1/(10 n))")
    train.add_argument("--epochs", type=_positive_int, default=60)
    train.add_argument("--batch-size", type=_positive_int, default=256)
    train.add_argument("--out", default="model-out", help="directory for the model and model_card.json/.md")
    train.add_argument("--context", action="append", metavar="KEY=VALUE",
                       help="the input is encrypted; its expected encryption context (repeat)")
    train.add_argument("--accountant", choices=("pld", "rdp"), default="pld")
    train.add_argument("--l2-norm-clip", type=_positive_float)
    train.add_argument("--learning-rate", type=_positive_float)
    train.add_argument("--hidden", type=_hidden, help="hidden layer widths, default 32,16")
    train.add_argument("--seed", type=int, default=None,
                       help="fix the random state (experiments only: a known seed lets anyone regenerate the DP noise)")
    train.add_argument("--nonprivate-baseline", action="store_true",
                       help="also train the same model without DP and report its metrics and attack AUC")
    train.add_argument("--encrypt-model", action="store_true", help="write only the encrypted model")
    train.add_argument("--kms-key-id", help="KMS key for --encrypt-model (default SECUREPIPE_KMS_KEY_ID)")
    train.add_argument("--model-context", action="append", metavar="KEY=VALUE",
                       help="encryption context of the model (repeat)")
    train.add_argument("--masking-policy-hash", help="sha256 of the masking policy applied to the data")
    train.add_argument("--budget-dataset", help="charge this dataset's privacy budget before training")
    train.add_argument("--dataset-version")
    train.add_argument("--run-id")
    train.add_argument("--state-dir", help="where the budget ledger lives (default SECUREPIPE_STATE_DIR)")
    train.set_defaults(func=_train)

    budget = commands.add_parser("budget", help="per-dataset privacy budget ledger")
    actions = budget.add_subparsers(dest="budget_action", required=True, metavar="ACTION")
    for name, handler, helptext in (
        ("set", _budget_set, "set a dataset's total (epsilon, delta) budget"),
        ("charge", _budget_charge, "charge a run; refused (exit 3) if over budget"),
        ("status", _budget_status, "spent and remaining budget"),
        ("reset", _budget_reset, "void the runs of an erased dataset version"),
    ):
        action = actions.add_parser(name, help=helptext)
        action.add_argument("--dataset", required=True)
        action.add_argument("--state-dir")
        if name in ("set", "charge"):
            action.add_argument("--epsilon", required=True, type=_positive_float)
            action.add_argument("--delta", required=True, type=_positive_float)
        if name in ("charge", "reset"):
            action.add_argument("--version", required=True)
        if name == "charge":
            action.add_argument("--run-id", required=True)
        if name == "reset":
            action.add_argument("--reason", default="erasure")
        action.set_defaults(func=handler)

    dp = bench.add_parser("dp", help="DP-SGD vs non-private: throughput and accuracy at epsilon 3")
    dp.add_argument("--json", action="store_true", help="print one JSON object (the only output format)")
    dp.add_argument("--rows", type=_positive_int, default=20000, help="demo rows for the throughput run")
    dp.add_argument("--epochs", type=_positive_int, default=10, help="timed epochs per repeat")
    dp.add_argument("--repeats", type=_positive_int, default=5)
    dp.add_argument("--utility-rows", type=_positive_int, default=5000)
    dp.add_argument("--utility-epochs", type=_positive_int, default=60)
    dp.add_argument("--threads", type=int, default=0,
                    help="pin TensorFlow to N CPU threads (steadier on a shared machine); 0 = all cores")
    dp.set_defaults(func=_bench_dp)

    mia = bench.add_parser("mia", help="membership-inference AUC, DP vs non-private, in an overfitting setting")
    mia.add_argument("--json", action="store_true", help="print one JSON object (the only output format)")
    mia.add_argument("--rows", type=_positive_int, default=500)
    mia.add_argument("--epochs", type=_positive_int, default=300)
    mia.set_defaults(func=_bench_mia)
