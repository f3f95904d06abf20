"""`securepipe data profile|check`: the poisoning guard from the shell.

Standard library only at module level (the CLI also runs in the training venv). Exit codes:
0 clean, 3 findings (a `DataValidationFailed`), 2 unreadable input; a profile that does not
decrypt is 4, one whose signature does not verify is 5. Nothing printed holds a cell value:
findings name the check and the column with aggregate rates.
"""
from __future__ import annotations

import json
import sys


def _read(path: str, label: str):
    from securepipe.ingest import read_all

    return read_all(path, required_columns=[label])


def _profile(args) -> int:
    from securepipe.audit.signing import get_signing_key
    from securepipe.config import kms_key_id
    from securepipe.validation.profile import build_profile
    from securepipe.validation.store import save_profile

    profile = build_profile(_read(args.src, args.label), args.label, file=args.src)
    key_id = kms_key_id(args.kms_key_id)
    info = save_profile(profile, args.out, dataset=args.dataset, key_id=key_id,
                        signing_key=get_signing_key(create=True, kms_key_id=key_id))
    print(json.dumps({"profile": args.out, "rows": profile["rows"], "numeric": sorted(profile["numeric"]),
                      "categorical": sorted(profile["categorical"]), "rates": profile["rates"],
                      "sha256": info["sha256"], "kms_key_id": info["kms_key_id"]}, sort_keys=True))
    return 0


def _check(args) -> int:
    from securepipe.audit.signing import get_signing_key
    from securepipe.errors import DataValidationFailed
    from securepipe.validation.checks import check_batch
    from securepipe.validation.store import load_profile

    profile = load_profile(args.profile, dataset=args.dataset, signing_key=get_signing_key())
    findings = check_batch(_read(args.src, profile["label"]), profile)
    if args.json:
        print(json.dumps({"clean": not findings, "findings": [f.as_dict() for f in findings]}, sort_keys=True))
    else:
        for finding in findings:
            print(finding)
        print("clean" if not findings else f"{len(findings)} finding(s)")
    if findings:
        sys.stdout.flush()
        raise DataValidationFailed(f"{len(findings)} data check finding(s): "
                                   + "; ".join(sorted({f'{f.check} {f.column or "-"}' for f in findings})))
    return 0


def register(commands, bench) -> None:
    data = commands.add_parser("data", help="data validation and poisoning guard")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    profile = sub.add_parser("profile", help="profile an accepted (reference) table; signed and encrypted")
    profile.add_argument("--in", dest="src", required=True, metavar="REFERENCE")
    profile.add_argument("--label", required=True, metavar="COL")
    profile.add_argument("--out", required=True, metavar="PROFILE")
    profile.add_argument("--dataset", default="default", help="dataset name bound into the encryption context")
    profile.add_argument("--kms-key-id", help="KMS key (default: $SECUREPIPE_KMS_KEY_ID)")
    profile.set_defaults(func=_profile)
    check = sub.add_parser("check", help="check a new table against a profile: exit 0 clean, 3 findings")
    check.add_argument("--in", dest="src", required=True, metavar="NEW")
    check.add_argument("--profile", required=True, metavar="PROFILE")
    check.add_argument("--dataset", default="default", help="the dataset name the profile was written for")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(func=_check)
