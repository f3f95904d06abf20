"""The word lexicon the name, place and code rules share, and the letter classes of names.

Why: a capitalized word is a name when it is not a known common word, so the rules need
to know which words are common. The lexicon is a file built once by
`tools/build_lexicon.py` (`make lexicon`) from public word, name, place and drug lists
and shipped in the package; nothing is downloaded or generated at run time. Each word
has one category: COMMON, AMBIGUOUS (a common word that is also a surname: "brown"),
PROPER (a frequent proper noun or adjective: "Spanish", "Dorset"), NAME, PLACE; a word the
file lacks is UNKNOWN.
"""
from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources

# Upper- and lower-case letters of the Latin (diacritics included), Greek and Cyrillic alphabets,
# for names in any European language.
UPPER = "A-ZÀ-ÖØ-ÞĀĂĄĆĈĊČĎĐĒĔĖĘĚĜĞĠĢĤĦĨĪĬĮİĴĶĹĻĽĿŁŃŅŇŌŎŐŒŔŖŘŚŜŞŠŢŤŦŨŪŬŮŰŲŴŶŸŹŻŽΆΈ-ΏΑ-ΩЀ-Я"
LOWER = "a-zß-öø-ÿāăąćĉċčďđēĕėęěĝğġģĥħĩīĭįıĵķĺļľŀłńņňōŏőœŕŗřśŝşšţťŧũūŭůűųŵŷźżžά-ώа-џ"
# A capitalized word of a name or place (hyphens and apostrophes inside, an abbreviation's dot after).
NAME_WORD = rf"[{UPPER}][{LOWER}{UPPER}'’]*(?:[-'’][{UPPER}{LOWER}][{LOWER}{UPPER}'’]*)*\.?"

COMMON, AMBIGUOUS, PROPER, NAME, PLACE, UNKNOWN = "C", "A", "R", "N", "P", "?"


@lru_cache(maxsize=1)
def lexicon() -> dict[str, str]:
    """word (lower case) -> category, from the file `tools/build_lexicon.py` writes."""
    data = resources.files("securepipe.pii").joinpath("data/lexicon.tsv.gz").read_bytes()
    entries = {}
    for line in gzip.decompress(data).decode("utf-8").splitlines():
        word, _, category = line.partition("\t")
        entries[word] = category
    return entries


def category(word: str) -> str:
    """The word's category; a proper noun counts as common except where a rule asks for PROPER."""
    found = lexicon().get(word.lower().strip(".’'"), UNKNOWN)
    return COMMON if found == PROPER else found


def proper_noun(word: str) -> bool:
    return lexicon().get(word.lower().strip(".’'")) == PROPER


