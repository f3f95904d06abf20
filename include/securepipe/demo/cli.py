"""`securepipe demo` (the whole pipeline once) and `securepipe up` (the web UI for exploring)."""
from __future__ import annotations

from securepipe.progress import add_quiet_flag


def register(commands, bench) -> None:
    demo = commands.add_parser("demo", help="run secure_training once on the embedded default and print a summary")
    demo.add_argument("--input", help="your own table (.csv or .parquet) instead of synthetic patients")
    demo.add_argument("--label", help="the column to predict (required with --input; default readmitted)")
    demo.add_argument("--policy", help="a masking policy in policies/ by name (default: demo for the synthetic "
                                       "patients, the zero-configuration default for --input)")
    demo.add_argument("--rows", type=int, default=20_000, help="synthetic patients to generate (default 20000)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--epochs", type=int, default=5)
    demo.add_argument("--target-epsilon", type=float, default=3.0)
    demo.add_argument("--home", help="AIRFLOW_HOME (default: $AIRFLOW_HOME or ./.airflow)")
    demo.add_argument("--timeout", type=float, default=1800)
    demo.add_argument("--keep-running", action="store_true", help="leave the UI up after the run (Ctrl-C stops)")
    add_quiet_flag(demo)
    demo.set_defaults(func=_demo)

    up = commands.add_parser("up", help="start the Airflow UI and components on the embedded default")
    up.add_argument("--home")
    up.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    up.add_argument("--port", type=int, default=8080)
    up.set_defaults(func=_up)


def _demo(args) -> int:
    from securepipe.demo.runner import run_demo

    return run_demo(args)


def _up(args) -> int:
    from securepipe.demo.runner import run_up

    return run_up(args)
