"""The `securepipe` command line.

Each concern owns its sub-commands in a `cli` module that imports only the standard
library at the top (the same entry point runs in the Airflow venv and in the
training venv, which lack each other's heavy libraries) and exposes
`register(commands, bench)`: `commands` is the top-level sub-parser set, `bench`
the set under `securepipe bench`. Handlers return an exit code.

Errors: a `SecurePipeError` is printed as is (its message is built to be safe);
any other exception is reported by type only, because its text may hold a value.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from securepipe.errors import SecurePipeError

COMMAND_MODULES = (
    "securepipe.pii.cli",
    "securepipe.crypto.cli",
    "securepipe.training.cli",
    "securepipe.audit.cli",
    "securepipe.lineage.cli",
    "securepipe.validation.cli",
    "securepipe.demo.cli",
    "securepipe.bench.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="securepipe", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench_parser = commands.add_parser("bench", help="benchmarks that print one JSON object")
    bench = bench_parser.add_subparsers(dest="bench", required=True, metavar="WHAT")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a concern not present in this build
        module.register(commands, bench)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SecurePipeError as exc:
        print(f"securepipe: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the text of an unknown error may hold raw values
        if os.environ.get("SECUREPIPE_DEBUG") == "1":
            raise
        print(
            f"securepipe: internal error: {type(exc).__name__} (message withheld: it may contain data; "
            "set SECUREPIPE_DEBUG=1 on a trusted machine to see it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
