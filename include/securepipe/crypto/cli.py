"""`securepipe crypto ...` and `securepipe bench crypto`: envelope encryption from the shell.

Why a separate module with only standard-library imports at the top: the same
`securepipe` entry point runs in the Airflow venv and the training venv; tink,
boto3 and cryptography load inside the handlers. Every handler prints one JSON
object (header info, hashes, key ids: never key material or plaintext) and
fails closed: a decrypt that cannot verify every byte leaves no output file.
"""
from __future__ import annotations

import json
import sys

from securepipe.errors import CryptoError
from securepipe.progress import add_quiet_flag


def parse_context(pairs: list[str] | None) -> dict[str, str]:
    context: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CryptoError("--context takes key=value")
        if name in context:
            raise CryptoError(f"--context key {name!r} given twice")
        context[name] = value
    return context


def _print(result: dict) -> int:
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


def _progress(args, verb: str):
    import os

    from securepipe.progress import Progress

    return Progress(f"{verb} {os.path.basename(args.src)}", total=os.path.getsize(args.src), unit="bytes",
                    quiet=args.quiet)


def _encrypt(args) -> int:
    from securepipe.crypto import envelope

    with _progress(args, "encrypt") as progress:
        result = envelope.encrypt_file(
            args.src, args.out, key_id=args.kms_key_id, context=parse_context(args.context),
            algorithm=args.algorithm, shred_scope=args.shred_scope, progress=progress,
        )
    return _print(result)


def _decrypt(args) -> int:
    from securepipe.crypto import envelope

    with _progress(args, "decrypt") as progress:
        result = envelope.decrypt_file(args.src, args.out, expected_context=parse_context(args.context),
                                       progress=progress)
    return _print(result)


def _inspect(args) -> int:
    from securepipe.crypto import envelope

    return _print(envelope.inspect(args.file))


def _rewrap(args) -> int:
    from securepipe.crypto import envelope

    return _print(envelope.rewrap(args.src, to_key_id=args.to_kms_key_id))


def _enable_rotation(args) -> int:
    from securepipe.crypto import rotation

    return _print({"kms_key_id": args.kms_key_id, "rotation_enabled": rotation.enable_key_rotation(args.kms_key_id)})


def _rewrap_state(args) -> int:
    from securepipe.config import state_dir
    from securepipe.crypto import rotation

    return _print({"rewrapped": rotation.rewrap_state(state_dir(), to_key_id=args.to_kms_key_id)})


def _shred(args) -> int:
    from securepipe.crypto.shred import default_store

    store = default_store(args.kms_key_id)
    return _print({"scope_ref": store.ref(args.scope), "shredded": store.shred(args.scope)})


def _bench(args) -> int:
    from securepipe.crypto.bench import run_bench

    result = run_bench(args.mib, file_mib=args.file_mib)
    if args.json:
        return _print(result)
    for name, value in sorted(result.items()):
        print(f"{name}: {value}")
    return 0


def register(commands, bench) -> None:
    crypto = commands.add_parser("crypto", help="client-side envelope encryption (Tink streaming AEAD + KMS)")
    sub = crypto.add_subparsers(dest="crypto_command", required=True, metavar="ACTION")

    encrypt = sub.add_parser("encrypt", help="encrypt a file under a fresh KMS-wrapped data key")
    encrypt.add_argument("--in", dest="src", required=True, metavar="FILE")
    encrypt.add_argument("--out", required=True, metavar="FILE.enc")
    encrypt.add_argument("--kms-key-id", help="KMS key id, ARN or alias (default: $SECUREPIPE_KMS_KEY_ID)")
    encrypt.add_argument("--context", action="append", required=True, metavar="KEY=VALUE",
                         help="encryption context pair (repeat); decrypt must give the same pairs")
    encrypt.add_argument("--algorithm", default="AES256_GCM_HKDF_1MB",
                         choices=["AES256_GCM_HKDF_1MB", "AES256_GCM_HKDF_4KB"])
    encrypt.add_argument("--shred-scope", metavar="dataset:NAME|subject:ID",
                         help="also seal the data key under this crypto-shredding scope")
    add_quiet_flag(encrypt)
    encrypt.set_defaults(func=_encrypt)

    decrypt = sub.add_parser("decrypt", help="verify and decrypt; no output unless every byte verifies")
    decrypt.add_argument("--in", dest="src", required=True, metavar="FILE.enc")
    decrypt.add_argument("--out", required=True, metavar="FILE")
    decrypt.add_argument("--context", action="append", required=True, metavar="KEY=VALUE")
    add_quiet_flag(decrypt)
    decrypt.set_defaults(func=_decrypt)

    inspect = sub.add_parser("inspect", help="print the header as JSON without decrypting")
    inspect.add_argument("file", metavar="FILE.enc")
    inspect.set_defaults(func=_inspect)

    rewrap = sub.add_parser("rewrap", help="re-wrap the data key (KMS ReEncrypt); the body is not touched")
    rewrap.add_argument("--in", dest="src", required=True, metavar="FILE.enc")
    rewrap.add_argument("--to-kms-key-id", help="target KMS key (default: the file's key, current version)")
    rewrap.set_defaults(func=_rewrap)

    rewrap_state = sub.add_parser("rewrap-state", help="re-wrap the pseudonym secret and shred-store master")
    rewrap_state.add_argument("--to-kms-key-id", help="target KMS key (default: each file's key, current version)")
    rewrap_state.set_defaults(func=_rewrap_state)

    rotation = sub.add_parser("enable-rotation", help="turn on KMS automatic key rotation")
    rotation.add_argument("--kms-key-id")
    rotation.set_defaults(func=_enable_rotation)

    shred = sub.add_parser("shred", help="crypto-shred a dataset or data subject (irreversible)")
    shred.add_argument("--scope", required=True, metavar="dataset:NAME|subject:ID")
    shred.add_argument("--kms-key-id", help="only needed if the shred store does not exist yet")
    shred.set_defaults(func=_shred)

    bench_crypto = bench.add_parser("crypto", help="envelope format vs raw AES-GCM, and file encrypt vs cp")
    bench_crypto.add_argument("--mib", type=int, default=256, help="in-memory size in MiB")
    bench_crypto.add_argument("--file-mib", type=int, default=None,
                              help="file-to-file size in MiB (default: --mib; 0 skips the file phase)")
    bench_crypto.add_argument("--json", action="store_true", help="print one JSON object")
    bench_crypto.set_defaults(func=_bench)

