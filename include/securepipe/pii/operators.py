"""Masking operators: one registry, each operator whole-column (vectorized) and validated.

Threat model: a masked value must not let a reader of the masked data recover the
original, yet joins and the model's signal must survive where the policy asks.
- `pseudonym`: keyed HMAC-SHA256 under a secret that is KMS-wrapped at rest
  (`securepipe.crypto.secrets.pseudonym_secret`). Deterministic, so the same value
  gives the same token in every run and table (joins work); without the secret a
  token cannot be reversed or confirmed by guessing (an unkeyed or randomly salted
  hash gives one or the other away). Rotating the secret re-keys every token: mask
  all tables again under the new key id; old and new tokens do not join.
- `date_shift`: one secret-derived offset per subject, so intervals within a
  patient's record survive while calendar dates do not.
- `year`, `zip_prefix`, `age_band`: HIPAA Safe Harbor style generalization (`zip_prefix`
  keeps the first characters of a postcode of any country; `age_band` with width 1
  keeps ages exact below `top`).
- `redact`, `partial_mask`: nothing, or only a short tail, of the value remains.
Operators compute once per distinct value and map back, so cost follows the number of
distinct values, not rows, and no operator runs NER.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from securepipe.errors import PolicyError

TOKEN_BITS = 80  # collisions stay negligible far beyond any table here
TOKEN_CHARS = 18  # 26**18 > 2**80
# Letters only: a token can never contain a digit run that reads as (part of) a ZIP, SSN or phone.
TOKEN_RE = re.compile(r"\[[A-Z_]+:[a-z]{18}\]")
# What masking leaves in text: pseudonym tokens and redaction markers ("<PERSON>").
SURROGATE_RE = re.compile(rf"{TOKEN_RE.pattern}|<[A-Z_]+>")


def surrogate_ranges(text: str) -> list[tuple[int, int]]:
    """Where a text holds masking output already (a masked table, masked again)."""
    return [match.span() for match in SURROGATE_RE.finditer(text)]


def within(start: int, end: int, ranges) -> bool:
    """True when [start, end) lies wholly inside one of `ranges`."""
    return any(low <= start and end <= high for low, high in ranges)
# HIPAA Safe Harbor: three-digit ZIP areas with 20,000 people or fewer become 000.
RESTRICTED_ZIP3 = frozenset(
    "036 059 063 102 203 556 692 790 821 823 830 831 878 879 884 890 893".split()
)


@dataclass(frozen=True)
class Context:
    """What an operator may use besides the values: the entity, the key, the subject per row."""

    entity: str
    secret: bytes
    subjects: pd.Series | None = None


def _normalize(value: str) -> str:
    return " ".join(str(value).split()).casefold()


def pseudonym_token(value: str, entity: str, secret: bytes) -> str:
    digest = hmac.new(secret, f"{entity}\x00{_normalize(value)}".encode(), hashlib.sha256).digest()
    number = int.from_bytes(digest[: TOKEN_BITS // 8], "big")
    letters = []
    for _ in range(TOKEN_CHARS):
        number, index = divmod(number, 26)
        letters.append(chr(ord("a") + index))
    return f"[{entity}:{''.join(letters)}]"


def _map_distinct(values: pd.Series, func: Callable[[str], str]) -> pd.Series:
    """Apply `func` once per distinct non-null value; nulls stay null."""
    present = values.notna()
    if not present.any():
        return values
    as_text = values[present].astype(str)
    distinct = pd.unique(as_text)
    mapping = dict(zip(distinct, (func(v) for v in distinct)))
    out = pd.Series(pd.NA, index=values.index, dtype=object)
    out[present] = as_text.map(mapping)
    return out


class Operator:
    """Base: `validate` checks parameters when the policy loads; `apply` masks a column."""

    name = ""
    PARAMS: dict[str, type] = {}

    def validate(self, params: dict) -> None:
        for key, value in params.items():
            if key not in self.PARAMS:
                raise PolicyError(f"operator {self.name!r}: unknown parameter {key!r}")
            if not isinstance(value, self.PARAMS[key]) or isinstance(value, bool):
                raise PolicyError(f"operator {self.name!r}: parameter {key!r} must be {self.PARAMS[key].__name__}")

    def apply(self, values: pd.Series, params: dict, ctx: Context) -> pd.Series:
        raise NotImplementedError


class Keep(Operator):
    name = "keep"

    def apply(self, values, params, ctx):
        return values


class Redact(Operator):
    name = "redact"
    PARAMS = {"replacement": str}

    def apply(self, values, params, ctx):
        replacement = params.get("replacement", f"<{ctx.entity}>")
        return values.where(values.isna(), replacement).astype(object)


class PartialMask(Operator):
    """Mask every letter and digit except the last `keep_last` digits (format kept)."""

    name = "partial_mask"
    PARAMS = {"keep_last": int, "char": str}

    def validate(self, params):
        super().validate(params)
        if not 0 <= params.get("keep_last", 4) <= 4:
            raise PolicyError("operator 'partial_mask': keep_last must be between 0 and 4")
        if len(params.get("char", "*")) != 1 or params.get("char", "*").isalnum():
            raise PolicyError("operator 'partial_mask': char must be one non-alphanumeric character")

    def apply(self, values, params, ctx):
        keep, char = params.get("keep_last", 4), params.get("char", "*")

        def mask(value: str) -> str:
            digits = sum(ch.isdigit() for ch in value)
            out, seen = [], 0
            for ch in value:
                if ch.isdigit():
                    seen += 1
                    out.append(ch if seen > digits - keep else char)
                else:
                    out.append(char if ch.isalpha() else ch)
            return "".join(out)

        return _map_distinct(values, mask)


class Pseudonym(Operator):
    name = "pseudonym"

    def apply(self, values, params, ctx):
        return _map_distinct(values, lambda v: pseudonym_token(v, ctx.entity, ctx.secret))


_DAY_FIRST = re.compile(r"^\s*(?:1[3-9]|2\d|3[01])[./-]\d{1,2}[./-]\d{2,4}\b|^\s*\d{1,2}\.\d{1,2}\.\d{2,4}\b")


_COLUMN_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%m/%d/%Y", "%d/%m/%Y", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")


def parse_dates(values: pd.Series) -> pd.Series:
    """Dates in any common format; a column is read day-first when it is written that way
    anywhere (13/04/1984, or dotted as in 02.03.1984), so intervals stay right for DE/FR/UK dates.
    A column written in one common format is parsed at C speed; mixed columns value by value."""
    text = values.astype("string")
    day_first = bool(text.str.contains(_DAY_FIRST, na=False).any())
    present = text.notna()
    for fmt in _COLUMN_FORMATS:
        if fmt.startswith("%m") and day_first:
            continue
        parsed = pd.to_datetime(text, errors="coerce", format=fmt)
        if parsed[present].notna().all():
            return parsed
    return pd.to_datetime(text, errors="coerce", format="mixed", dayfirst=day_first)


class DateShift(Operator):
    """Shift every date of a subject by the same secret-derived number of days."""

    name = "date_shift"
    PARAMS = {"max_days": int}

    def validate(self, params):
        super().validate(params)
        if not 1 <= params.get("max_days", 180) <= 3650:
            raise PolicyError("operator 'date_shift': max_days must be between 1 and 3650")

    def apply(self, values, params, ctx):
        if ctx.subjects is None:
            raise PolicyError("operator 'date_shift' needs a subject key per row")
        max_days = params.get("max_days", 180)

        def offset(subject: str) -> int:
            digest = hmac.new(ctx.secret, f"date-shift\x00{_normalize(subject)}".encode(), hashlib.sha256).digest()
            magnitude = int.from_bytes(digest[:4], "big") % max_days + 1  # never zero
            return magnitude if digest[4] & 1 else -magnitude

        days = _map_distinct(ctx.subjects, lambda s: str(offset(s)))
        days = pd.to_numeric(days, errors="coerce").fillna(0).astype("int64")
        parsed = parse_dates(values)
        shifted = (parsed + pd.to_timedelta(days.to_numpy(), unit="D")).dt.strftime("%Y-%m-%d")
        # A value that is not a date cannot be shifted: it is redacted rather than kept.
        return shifted.where(parsed.notna(), values.where(values.isna(), f"<{ctx.entity}>")).astype(object)


class Year(Operator):
    name = "year"

    def apply(self, values, params, ctx):
        parsed = parse_dates(values)
        years = parsed.dt.year.astype("Int64").astype(str)
        return years.where(parsed.notna(), values.where(values.isna(), f"<{ctx.entity}>")).astype(object)


class ZipPrefix(Operator):
    name = "zip_prefix"
    PARAMS = {"digits": int}

    def validate(self, params):
        super().validate(params)
        if not 0 <= params.get("digits", 3) <= 3:
            raise PolicyError("operator 'zip_prefix': digits must be between 0 and 3")

    def apply(self, values, params, ctx):
        digits = params.get("digits", 3)

        def generalize(value: str) -> str:
            value = value.strip()
            if not _US_ZIP.fullmatch(value):
                return _keep_leading(value.upper(), digits)  # postcodes elsewhere: SW1A 1AA -> SW1* ***
            head = re.sub(r"\D", "", value).zfill(5)[:digits]  # a numeric ZIP may have lost its leading zeros
            if len(head) < digits or (digits == 3 and head in RESTRICTED_ZIP3):
                head = "0" * digits
            return head + "*" * (5 - digits)

        return _map_distinct(values, generalize)


_US_ZIP = re.compile(r"\d{5}(?:-\d{4})?|\d{1,4}")  # numeric ZIPs may have lost leading zeros


def _keep_leading(value: str, count: int) -> str:
    """The first `count` letters and digits kept, every later one starred; spaces and dashes stay."""
    out, seen = [], 0
    for ch in value:
        if ch.isalnum():
            seen += 1
            out.append(ch if seen <= count else "*")
        else:
            out.append(ch)
    return "".join(out)


class AgeBand(Operator):
    """Ages to bands of `width` years; everyone at or over `top` shares one band (HIPAA: 90)."""

    name = "age_band"
    PARAMS = {"width": int, "top": int}

    def validate(self, params):
        super().validate(params)
        if not 1 <= params.get("width", 10) <= 50 or not 1 <= params.get("top", 90) <= 130:
            raise PolicyError("operator 'age_band': width must be 1-50 and top 1-130")

    def apply(self, values, params, ctx):
        width, top = params.get("width", 10), params.get("top", 90)
        ages = pd.to_numeric(values, errors="coerce")
        # An age found in text may carry its unit ("63 años", "5 meses"): the number is banded, the unit kept.
        text = values.astype("string")
        unit = text.str.extract(r"^\d{1,3}(\s+[^\W\d_]+)$", expand=False)
        ages = ages.where(unit.isna().to_numpy(), pd.to_numeric(text.str.extract(r"^(\d{1,3})", expand=False),
                                                                errors="coerce"))
        low = (np.floor(ages / width) * width).astype("Int64")
        bands = low.astype(str) if width == 1 else low.astype(str) + "-" + (low + width - 1).astype(str)
        bands = bands.where(ages < top, f"{top}+") + unit.fillna("").astype(object).to_numpy()
        # A value that is already a band ("40-49", "90+") is masking output: kept, so masking is idempotent.
        banded = values.astype("string").str.fullmatch(r"\d{1,3}(?:-\d{1,3}|\+)", na=False)
        other = values.where(values.isna() | banded, f"<{ctx.entity}>")
        return bands.where(ages.notna(), other).astype(object)


OPERATORS: dict[str, Operator] = {
    op.name: op for op in (Keep(), Redact(), PartialMask(), Pseudonym(), DateShift(), Year(), ZipPrefix(), AgeBand())
}


def get_operator(name: str) -> Operator:
    try:
        return OPERATORS[name]
    except KeyError:
        raise PolicyError(f"unknown operator {name!r} (known: {', '.join(sorted(OPERATORS))})") from None
