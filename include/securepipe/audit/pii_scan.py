"""Find known sensitive values in text without holding those values in clear.

Threat model: a reader of Airflow's logs, XCom or metadata DB. The compliance
audit must prove that no raw value crossed into them, but a scanner that keeps a
list of the raw values would itself be a copy of the PII. So values are reduced
at once to keyed hashes (BLAKE2b-128 keyed with a random per-index secret, i.e. a
MAC like HMAC-SHA256, but one call per token) of their normalised token
sequence, and the raw values are dropped. Scanned text is tokenised the same way
and every n-gram of the lengths in the index is hashed and looked up, so a match
is found however the value was punctuated ("555-123-4567", "555 123 4567"), and
digit-only values also match when written without separators ("5551234567").
The index key lives in memory only, so the index is useless to whoever copies it.

Matches are reported by location (file and line, table/column/row) and count,
never by value. Values shorter than `min_chars` alphanumerics ("F", "12") are not
indexed: they would match everywhere and prove nothing; their number is reported.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from collections.abc import Iterable, Iterator

TOKEN = re.compile(r"[0-9a-z]+")
DEFAULT_MIN_CHARS = 5
MAX_NGRAM = 12


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text.casefold())


@dataclass
class SensitiveValueIndex:
    """A set of keyed hashes of sensitive values' token sequences."""

    key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    digests: set[bytes] = field(default_factory=set, repr=False)
    ngram_lengths: set[int] = field(default_factory=set)
    indexed: int = 0
    skipped_short: int = 0

    def __repr__(self) -> str:
        return f"SensitiveValueIndex(indexed={self.indexed}, skipped_short={self.skipped_short})"

    def _digest(self, token_seq) -> bytes:
        return hashlib.blake2b(" ".join(token_seq).encode(), key=self.key, digest_size=16).digest()

    def add(self, value, *, min_chars: int = DEFAULT_MIN_CHARS) -> bool:
        """Index one value; returns False when it was too short (or too long) to index."""
        if value is None:
            return False
        parts = tokens(str(value))
        if sum(len(p) for p in parts) < min_chars or len(parts) > MAX_NGRAM:
            self.skipped_short += 1
            return False
        self.digests.add(self._digest(parts))
        self.ngram_lengths.add(len(parts))
        if len(parts) > 1 and all(p.isdigit() for p in parts):
            self.digests.add(self._digest(["".join(parts)]))
            self.ngram_lengths.add(1)
        self.indexed += 1
        return True

    @classmethod
    def from_values(cls, values: Iterable, *, min_chars: int = DEFAULT_MIN_CHARS) -> SensitiveValueIndex:
        index = cls()
        for value in values:
            index.add(value, min_chars=min_chars)
        return index

    def count_matches(self, text: str) -> int:
        """How many n-grams of `text` are indexed values."""
        if not self.digests or not text:
            return 0
        parts = tokens(text)
        found = 0
        for n in self.ngram_lengths:
            for start in range(len(parts) - n + 1):
                if self._digest(parts[start:start + n]) in self.digests:
                    found += 1
        return found


@dataclass
class ScanFindings:
    """Counts and locations of matches (never the values)."""

    scanned: int = 0  # files, rows or records looked at
    matches: int = 0  # matching n-grams in all
    places: int = 0  # lines / cells / records with at least one match
    locations: list[dict] = field(default_factory=list)
    max_locations: int = 20

    def add(self, count: int, location: dict) -> None:
        if not count:
            return
        self.matches += count
        self.places += 1
        if len(self.locations) < self.max_locations:
            self.locations.append({**location, "matches": count})

    def as_details(self, scanned_name: str) -> dict:
        return {scanned_name: self.scanned, "matches": self.matches, "places_with_matches": self.places,
                "locations": self.locations, "locations_truncated": self.places > len(self.locations)}


def iter_text_lines(path) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            yield line_no, raw.decode("utf-8", errors="replace")
