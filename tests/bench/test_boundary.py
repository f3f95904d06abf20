"""Benchmarks live outside the runtime: no runtime module imports `securepipe.bench`, and the per-concern
`bench` modules (with the generated corpus they score) are reached only from a CLI's bench command."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "include" / "securepipe"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_runtime_module_imports_the_bench_package():
    runtime = [p for p in PACKAGE.rglob("*.py") if "bench" not in p.relative_to(PACKAGE).parts]
    assert len(runtime) > 20  # the scan sees the package
    offenders = sorted(str(p.relative_to(PACKAGE)) for p in runtime
                       if any(name == "securepipe.bench" or name.startswith("securepipe.bench.")
                              for name in _imports(p)))
    assert offenders == []


def _is_measurement(module: str) -> bool:
    return module.endswith(".bench") or module == "securepipe.pii.corpus"


def test_per_concern_benchmarks_are_imported_only_by_cli_bench_commands():
    runtime = [p for p in PACKAGE.rglob("*.py")
               if p.name not in ("cli.py", "bench.py", "corpus.py") and "bench" not in p.relative_to(PACKAGE).parts]
    offenders = sorted(str(p.relative_to(PACKAGE)) for p in runtime if any(map(_is_measurement, _imports(p))))
    assert offenders == []


def test_the_scan_would_see_such_an_import(tmp_path):
    sample = tmp_path / "runtime.py"
    sample.write_text("from securepipe.bench.pii_eval import evaluate\nimport securepipe.bench\n")
    assert {"securepipe.bench.pii_eval", "securepipe.bench"} <= _imports(sample)
