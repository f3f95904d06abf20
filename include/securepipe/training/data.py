"""Training data: load a table (Parquet, CSV or the pipeline's encrypted form), pick features, split.

Threat model: plaintext of sensitive records must not land on disk, and errors must not
carry values. An encrypted input is decrypted into memory only (`decrypt_to_bytes`
checks its encryption context, so a file from another dataset or purpose is refused)
and parsed from that buffer. Every error names the file, the row and the column, never
the value.

Which columns become features, and why the others do not (the model card lists both):
- numbers (and numbers written as text, and top-coded ones such as "90+") are numeric
  features; a missing number is imputed with the training split's mean;
- a text column with at most `MAX_CATEGORIES` distinct values (sex, a generalized
  postcode or birth-year band, a diagnosis code, a Y/N flag) is one-hot encoded; a
  category seen fewer than `MIN_CATEGORY_ROWS` times in the training split joins
  "(other)", so no rare value becomes a feature name;
- left out: masked columns (pseudonym tokens, redaction markers, partial masks: masked
  identifiers never feed the model), free text, text with too many distinct values
  (identifier-like or high cardinality), and constant columns.
The label may be 0/1, or any column with 2 to `MAX_CLASSES` classes (binary or
multi-class); each class needs rows in both splits.

The scaling (and the category list) is fitted on the training split only, so nothing
about held-out rows leaks into training (and the membership attack's non-members stay
unseen). The scaling is differentially private (scaling.py: bounds from one noised
histogram per feature, charged to the run's ε). Not covered by ε, and said so on the
card: which columns are used and which categories have at least `MIN_CATEGORY_ROWS`
training rows (names, not numbers), and the row counts, which the accountant takes as public.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from securepipe.errors import InputError
from securepipe.training import scaling

PARQUET_MAGIC = b"PAR1"
LEADING_ZERO_CODE = r"^\s*[-+]?0\d"
TOP_CODED = r"^\s*(\d+(?:\.\d+)?)\s*\+\s*$"  # "90+": an age or count top-coded at its bound
MIN_ROWS = 20
DEFAULT_TEST_FRACTION = 0.2
MAX_CATEGORIES = 20
MAX_CLASSES = 20
MIN_CATEGORY_ROWS = 5
OTHER = "(other)"
MISSING = "(missing)"
# What masking leaves in a cell: pseudonym tokens, redaction markers, partial masks (stars, then the
# digits kept). A generalized value ("10***", "1960-1979", "*") is a category, not masking output.
_MASKED = r"\[[A-Z_]+:[a-z]{18}\]|<[A-Z_]+>|\*.*\d"


@dataclass(frozen=True)
class Split:
    """Standardised train/test arrays, and what the standardisation, features and classes were."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    features: tuple[str, ...]  # model inputs: numeric columns, and "column=category" one-hot indicators
    mean: np.ndarray
    std: np.ndarray
    classes: tuple[str, ...] = ("0", "1")  # label value of each class index
    columns: dict = field(default_factory=dict)  # every column: how it is used, or why it is left out

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def _parse(raw: bytes, file: str):
    import pandas as pd

    try:
        if raw[:4] == PARQUET_MAGIC:
            frame = pd.read_parquet(io.BytesIO(raw))
        else:
            frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
    except Exception:  # noqa: BLE001 - parser messages can quote cell values
        raise InputError(file, "not a readable Parquet or CSV table") from None
    return numbers_from_text(frame)


def numbers_from_text(frame):
    """Turn text columns that hold only numbers into numbers (CSV input, and the pipeline keeps
    CSV cells as text through masking). A column written with leading zeros (ZIP "02134", MRN
    "0012345") is a code, not a quantity, so it stays text and never becomes a feature. A
    top-coded value ("90+") counts as its bound."""
    import pandas as pd

    for column in frame.columns:
        if frame[column].dtype.kind in "iufb":
            continue
        text = frame[column].astype("string").str.strip()
        present = text.notna() & (text != "")
        if not present.any() or text[present].str.match(LEADING_ZERO_CODE).any():
            continue
        bounded = text.str.extract(TOP_CODED, expand=False)
        numbers = pd.to_numeric(bounded.fillna(text).where(present), errors="coerce")
        if numbers[present].notna().all():
            frame[column] = numbers
    return frame


def load_table(path, *, context: dict[str, str] | None = None):
    """Read a table; returns (frame, sha256 of the file's bytes) for lineage.

    With `context`, the file is the pipeline's encrypted form, decrypted in memory; the hash
    is then of the ciphertext (what storage and lineage hold), taken before decrypting.
    """
    file = str(path)
    if context:
        from securepipe.crypto import decrypt_to_bytes
        from securepipe.storage import sha256_file

        digest = sha256_file(path)
        raw = decrypt_to_bytes(path, expected_context=context)
    else:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise InputError(file, f"cannot read ({exc.strerror or type(exc).__name__})") from None
        digest = hashlib.sha256(raw).hexdigest()  # exactly the bytes trained on
    return _parse(raw, file), digest


def numeric_features(frame, label: str) -> list[str]:
    """Numeric (and boolean) columns other than the label, in table order."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return [c for c in frame.columns if c != label and (is_numeric_dtype(frame[c]) or is_bool_dtype(frame[c]))]


def column_roles(frame, label: str) -> dict[str, str]:
    """How each column is used ("label", "numeric", "categorical") or why it is left out."""
    numeric = set(numeric_features(frame, label))
    roles = {}
    for column in frame.columns:
        if column == label:
            roles[column] = "label"
        elif column in numeric:
            roles[column] = _number_role(frame[column])
        else:
            roles[column] = _text_role(frame[column])
    return roles


def _number_role(values) -> str:
    present = values.dropna()
    distinct = present.nunique()
    if distinct <= 1:
        return "left out: constant"
    whole = (present.astype("float64") % 1 == 0).all()
    if whole and distinct == len(present) and len(present) >= MIN_ROWS:
        return "left out: identifier-like (unique per row)"  # a row number or a numeric ID, not a quantity
    return "numeric"


def _text_role(values) -> str:
    text = values.dropna().astype(str)
    text = text[text.str.strip() != ""]
    if text.empty:
        return "left out: empty"
    distinct = text.nunique()
    if distinct <= 1:
        return "left out: constant"
    if text.str.len().mean() >= 40 and text.str.count(" ").mean() >= 5:
        return "left out: free text"
    if text.str.contains(_MASKED).mean() >= 0.5:
        return "left out: masked (pseudonyms, redactions, partial masks)"
    if distinct > MAX_CATEGORIES:
        unique = distinct >= 0.9 * len(text)
        return "left out: identifier-like (unique per row)" if unique else \
            f"left out: high cardinality ({distinct} distinct values, at most {MAX_CATEGORIES})"
    return "categorical"


def _first_bad_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0]) + 1  # 1-based, header excluded


def _labels(frame, label: str, file: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class index per row and the label value of each class (0/1 labels keep their meaning)."""
    import pandas as pd

    values = frame[label]
    numbers = pd.to_numeric(values, errors="coerce")
    text = values.astype("string").str.strip()
    missing = (values.isna() | (text == "")).to_numpy()
    if missing.any():
        raise InputError(file, "label is missing", row=_first_bad_row(missing), column=label)
    keys = np.array([repr(float(n)) if pd.notna(n) else str(t) for n, t in zip(numbers, text)], dtype=object)
    if len(set(keys)) == 1:
        raise InputError(file, "label has a single class; nothing to learn", column=label)
    if numbers.notna().all() and set(numbers.unique()) <= {0.0, 1.0}:
        return numbers.to_numpy(dtype=np.int64), ("0", "1")
    names = {k: (f"{float(n):g}" if pd.notna(n) else str(t)) for k, n, t in zip(keys, numbers, text)}
    classes, y, counts = np.unique(keys, return_inverse=True, return_counts=True)
    if len(classes) > MAX_CLASSES:
        raise InputError(file, f"label has more than {MAX_CLASSES} classes", column=label)
    rare = counts[y] < 2
    if rare.any():
        raise InputError(file, "a label class has a single row (each class needs rows in both splits)",
                         row=_first_bad_row(rare), column=label)
    return y.astype(np.int64), tuple(names[c] for c in classes)


def _one_hot(values, categories: list[str]) -> np.ndarray:
    text = values.astype(object).where(values.notna(), MISSING).astype(str).to_numpy()
    known = set(categories)
    text = np.where(np.isin(text, list(known)), text, OTHER)
    return (text[:, None] == np.array(categories, dtype=object)[None, :]).astype(np.float64)


def prepare(frame, label: str, *, file: str, scaling_noise_multiplier: float,
            test_fraction: float = DEFAULT_TEST_FRACTION, seed: int = 0) -> Split:
    """Check the table, pick numeric and categorical features and the label, split (stratified), scale.

    `scaling_noise_multiplier` is the Gaussian noise of the DP scaling bounds (scaling.py); the
    accountant charges it (accounting.release_noise)."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    if label not in frame.columns:
        raise InputError(file, "label column is missing", column=label)
    if len(frame) < MIN_ROWS:
        raise InputError(file, f"needs at least {MIN_ROWS} rows to train and evaluate, has {len(frame)}")
    roles = column_roles(frame, label)
    numeric = [c for c, role in roles.items() if role == "numeric"]
    categorical = [c for c, role in roles.items() if role == "categorical"]
    if not numeric and not categorical:
        raise InputError(file, "no numeric or categorical feature columns besides the label")
    y, classes = _labels(frame, label, file)
    x_numeric = frame[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.isinf(x_numeric)
    if infinite.any():
        row, col = np.argwhere(infinite)[0]
        raise InputError(file, "missing or non-finite value", row=int(row) + 1, column=numeric[col])
    rows = np.arange(len(frame))
    train_rows, test_rows = train_test_split(rows, test_size=test_fraction, random_state=seed, stratify=y)
    train = frame.iloc[train_rows]
    features, blocks = list(numeric), [x_numeric]
    for column in categorical:
        counts = train[column].astype(object).where(train[column].notna(), MISSING).astype(str).value_counts()
        categories = sorted(counts[counts >= MIN_CATEGORY_ROWS].index) + [OTHER]
        roles[column] = f"categorical ({len(categories) - 1} categories one-hot, rare ones as {OTHER})"
        features += [f"{column}={category}" for category in categories]
        blocks.append(_one_hot(frame[column], categories))
    x = np.hstack(blocks) if blocks else np.zeros((len(frame), 0))
    # Numbers: midpoint and half width of DP bounds (scaling.py); one-hot indicators stay 0/1.
    center, half, how = scaling.dp_scaling(x[train_rows, :len(numeric)], scaling_noise_multiplier)
    for column, note in zip(numeric, how):
        roles[column] = f"numeric ({note})"
    mean = np.concatenate([center, np.zeros(x.shape[1] - len(numeric))])
    std = np.concatenate([half, np.ones(x.shape[1] - len(numeric))])
    x = np.where(np.isnan(x), mean, x)  # a missing number takes its feature's midpoint
    x_train, x_test = x[train_rows], x[test_rows]
    return Split(
        x_train=((x_train - mean) / std).astype(np.float32), y_train=y[train_rows],
        x_test=((x_test - mean) / std).astype(np.float32), y_test=y[test_rows],
        features=tuple(features), mean=mean, std=std, classes=classes, columns=roles,
    )
