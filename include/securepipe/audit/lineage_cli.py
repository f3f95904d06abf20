"""`securepipe lineage show RUN_ID`: print a run's manifest and whether its signature holds.

Only the standard library is imported here (the CLI runs in both venvs).
"""
from __future__ import annotations

import json


def register(commands, bench) -> None:
    lineage = commands.add_parser("lineage", help="per-run lineage manifests")
    sub = lineage.add_subparsers(dest="lineage_command", required=True, metavar="ACTION")
    show = sub.add_parser("show", help="print the manifest of a run")
    show.add_argument("run_id")
    show.add_argument("--dag-id", help="pick the DAG when several have a run with this id")
    show.add_argument("--manifests-dir", help="default: $SECUREPIPE_MANIFESTS_DIR or <state dir>/manifests")
    show.add_argument("--key-file", help="evidence signing key file, to verify the signature (default: state dir)")
    show.add_argument("--no-verify", action="store_true", help="do not check the signature (no key needed)")
    show.set_defaults(func=_show)


def _show(args) -> int:
    from securepipe.audit.signing import get_signing_key
    from securepipe.errors import AuditError, SecurePipeError
    from securepipe.audit.manifest import find_manifests, verify_manifest_signature

    found = find_manifests(args.run_id, dag_id=args.dag_id, manifests_dir=args.manifests_dir)
    if not found:
        raise SecurePipeError(f"no lineage manifest for run {args.run_id!r}")
    if len(found) > 1:
        dags = ", ".join(sorted(m["dag_id"] for _, m in found))
        raise SecurePipeError(f"run {args.run_id!r} exists in several DAGs ({dags}); pick one with --dag-id")
    path, manifest = found[0]
    if args.no_verify:
        signature = "not checked"
    else:
        reason = verify_manifest_signature(manifest, get_signing_key(args.key_file))
        if reason:
            raise AuditError(f"manifest {path.name}: {reason}")
        signature = "valid"
    print(json.dumps({"manifest_file": str(path), "signature": signature, "manifest": manifest}, indent=2,
                     sort_keys=True))
    return 0
