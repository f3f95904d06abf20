"""`securepipe audit ...`: append operator events, verify the log, build the report.

Only the standard library is imported here (the CLI runs in both venvs); the
handlers import the library when they run.
"""
from __future__ import annotations

import json


def register(commands, bench) -> None:
    audit = commands.add_parser("audit", help="the tamper-evident audit log and the compliance report")
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")

    append = sub.add_parser("append", help="append an operator event (creates the log when missing)")
    append.add_argument("--log", required=True, help="audit log file (JSON Lines)")
    append.add_argument("--event", required=True,
                        help='JSON object: {"type": "operator.note", "payload": {...}}, or a flat object '
                             '(its "type" key, default operator.event, and the rest as payload)')
    append.add_argument("--idempotency-key", help="a second append with the same key is a no-op")
    append.add_argument("--key-file", help="evidence signing key file (default: state dir)")
    append.set_defaults(func=_append)

    verify = sub.add_parser("verify", help="exit 0 when chain and signatures hold, else name the first bad entry")
    verify.add_argument("--log", required=True)
    verify.add_argument("--key-file", help="evidence signing key file (default: state dir)")
    verify.add_argument("--manifests-dir", help="also check manifest signatures and the audit heads they record")
    verify.set_defaults(func=_verify)

    report = sub.add_parser("report", help="run the checks whose inputs exist and write the HTML (and JSON) report")
    report.add_argument("--out", required=True, help="HTML report path")
    report.add_argument("--json-out", help="JSON report path (default: next to --out, .json)")
    report.add_argument("--log", help="audit log (default: state dir)")
    report.add_argument("--manifests-dir", help="lineage manifests (default: state dir)")
    report.add_argument("--ledger", help="privacy ledger (default: state dir)")
    report.add_argument("--storage-root", help="scan this local storage root for plaintext")
    report.add_argument("--reports-dir", help="report history (default: state dir)")
    report.add_argument("--kms-key-id", help="check this KMS key (default: SECUREPIPE_KMS_KEY_ID)")
    report.set_defaults(func=_report)

    bench_audit = bench.add_parser("audit", help="audit append and PII-scan throughput against baselines")
    bench_audit.add_argument("--entries", type=int, default=2000)
    bench_audit.add_argument("--lines", type=int, default=20000)
    bench_audit.add_argument("--values", type=int, default=5000)
    bench_audit.set_defaults(func=_bench)


def _parse_event(text: str) -> tuple[str, dict]:
    from securepipe.errors import AuditError

    try:
        event = json.loads(text)
    except ValueError:
        raise AuditError("--event is not valid JSON") from None
    if not isinstance(event, dict):
        raise AuditError("--event must be a JSON object")
    event_type = event.pop("type", "operator.event")
    if set(event) <= {"payload"}:
        payload = event.get("payload", {})
    else:
        payload = event
    return event_type, payload


def _append(args) -> int:
    import getpass

    from securepipe.audit.log import AuditLog

    event_type, payload = _parse_event(args.event)
    if not isinstance(payload, dict):
        payload = {"value": payload}
    payload = {**payload, "operator": getpass.getuser()}
    entry = AuditLog(args.log, key_path=args.key_file).append(event_type, payload,
                                                               idempotency_key=args.idempotency_key)
    print(json.dumps({"seq": entry["seq"], "hash": entry["hash"], "event": entry["event"]}))
    return 0


def _verify(args) -> int:
    from securepipe.audit.checks import check_audit_chain
    from securepipe.audit.log import verify_log
    from securepipe.errors import AuditError

    verdict = verify_log(args.log, key_path=args.key_file)
    if not verdict.ok:
        raise AuditError(verdict.message())
    message = verdict.message()
    if args.manifests_dir:
        details = check_audit_chain(args.log, manifests_dir=args.manifests_dir, key_path=args.key_file)["details"]
        if details["bad_manifests"]:
            bad = details["bad_manifests"][0]
            raise AuditError(f"manifest {bad['manifest']}: {bad['reason']}")
        message += f"; {details['manifests_checked']} manifests verified"
    print(message)
    return 0


def _report(args) -> int:
    from pathlib import Path

    from securepipe import config
    from securepipe.audit import checks
    from securepipe.audit.log import default_log_path
    from securepipe.audit.ledger_view import default_ledger_path
    from securepipe.audit.report import build_report, write_report

    log_path = Path(args.log) if args.log else default_log_path()
    ledger = Path(args.ledger) if args.ledger else default_ledger_path()
    results = [checks.run_check("audit_chain", log_path=log_path, manifests_dir=args.manifests_dir),
               checks.run_check("lineage_complete", manifests_dir=args.manifests_dir)]
    if ledger.exists():
        results.append(checks.run_check("privacy_budgets", ledger_path=ledger))
    if args.storage_root:
        results.append(checks.run_check("storage_encrypted", storage_root=args.storage_root))
    if config.kms_key_id(args.kms_key_id):
        results.append(checks.run_check("kms_key", key_id=args.kms_key_id))
    report = build_report(results, manifests_dir=args.manifests_dir, ledger_path=ledger,
                          reports_dir=args.reports_dir)
    json_out = args.json_out or str(Path(args.out).with_suffix(".json"))
    paths = write_report(report, reports_dir=args.reports_dir, html_out=args.out, json_out=json_out)
    print(json.dumps({"ok": report["ok"], "passed": report["passed"], "failed": report["failed"],
                      "html": paths["html"], "json": paths["json_out"]}))
    return 0


def _bench(args) -> int:
    from securepipe.audit.bench import run_bench

    print(json.dumps(run_bench(entries=args.entries, lines=args.lines, values=args.values)))
    return 0
