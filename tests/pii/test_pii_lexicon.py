"""The shipped word lexicon: rebuilt from its public sources, it comes out identical; its
categories hold what the name rules rely on."""
from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from securepipe.pii.lexicon import AMBIGUOUS, COMMON, NAME, PLACE, UNKNOWN, category

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "include" / "securepipe" / "pii" / "data" / "lexicon.tsv.gz"


def test_lexicon_is_reproducible_from_its_sources(tmp_path):
    rebuilt = tmp_path / "lexicon.tsv.gz"
    subprocess.run([sys.executable, str(REPO / "tools" / "build_lexicon.py"), str(rebuilt)], check=True,
                   capture_output=True)
    assert gzip.decompress(rebuilt.read_bytes()) == gzip.decompress(SHIPPED.read_bytes())


@pytest.mark.parametrize(("word", "expected"), [
    ("patient", COMMON), ("Spanish", COMMON), ("metformin", COMMON), ("Lopressor", COMMON),  # words and drugs
    ("my", COMMON), ("sedated", COMMON),  # a stop word; a rare word with an English ending
    ("Foley", COMMON),  # the catheter, not the surname
    ("Hope", AMBIGUOUS), ("grace", AMBIGUOUS),  # everyday words that are also names
    ("Mary", NAME), ("Müller", NAME), ("Kenneth", NAME), ("Anders", NAME),  # given names and surnames
    ("Böblingen", PLACE), ("Estonia", PLACE),
    ("Kudryashov", UNKNOWN),
])
def test_categories(word, expected):
    assert category(word) == expected
