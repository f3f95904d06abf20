"""Training data: load a table (Parquet, CSV or the pipeline's encrypted form), pick features, split.

Threat model: plaintext of sensitive records must not land on disk, and errors must not
carry values. An encrypted input is decrypted into memory only (`decrypt_to_bytes`
checks its encryption context, so a file from another dataset or purpose is refused)
and parsed from that buffer. Every error names the file, the row and the column, never
the value. Only numeric columns become features: string columns (tokens, pseudonyms,
free text) are ignored, so masked identifiers can never feed the model.

The standardisation is fitted on the training split only, so nothing about held-out
rows leaks into training (and the membership attack's non-members stay unseen). Its
mean and standard deviation are exact, not DP: two aggregates per feature that ship in
the model and sit outside epsilon, which the privacy statement says. Making them DP
needs public (or DP-estimated) feature ranges that this pipeline does not have yet.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from securepipe.errors import InputError

PARQUET_MAGIC = b"PAR1"
LEADING_ZERO_CODE = r"^\s*[-+]?0\d"
MIN_ROWS = 20
DEFAULT_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Split:
    """Standardised train/test arrays, and what the standardisation and features were."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    features: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray


def _parse(raw: bytes, file: str):
    import pandas as pd

    try:
        if raw[:4] == PARQUET_MAGIC:
            frame = pd.read_parquet(io.BytesIO(raw))
        else:
            frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
    except Exception:  # noqa: BLE001 - parser messages can quote cell values
        raise InputError(file, "not a readable Parquet or CSV table") from None
    return _numbers_from_text(frame)


def _numbers_from_text(frame):
    """Turn text columns that hold only numbers into numbers (CSV input, and the pipeline keeps
    CSV cells as text through masking). A column written with leading zeros (ZIP "02134", MRN
    "0012345") is a code, not a quantity, so it stays text and never becomes a feature."""
    import pandas as pd

    for column in frame.columns:
        if frame[column].dtype.kind in "iufb":
            continue
        text = frame[column].astype("string").str.strip()
        present = text.notna() & (text != "")
        if not present.any() or text[present].str.match(LEADING_ZERO_CODE).any():
            continue
        numbers = pd.to_numeric(text.where(present), errors="coerce")
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


def _first_bad_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0]) + 1  # 1-based, header excluded


def prepare(frame, label: str, *, file: str, test_fraction: float = DEFAULT_TEST_FRACTION, seed: int = 0) -> Split:
    """Check the table, take numeric features and a 0/1 label, split (stratified) and standardise."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    if label not in frame.columns:
        raise InputError(file, "label column is missing", column=label)
    if len(frame) < MIN_ROWS:
        raise InputError(file, f"needs at least {MIN_ROWS} rows to train and evaluate, has {len(frame)}")
    features = numeric_features(frame, label)
    if not features:
        raise InputError(file, "no numeric feature columns besides the label")
    # "1" read from text counts as 1; anything that is not exactly 0 or 1 is named by its row
    labels = pd.to_numeric(frame[label], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isin(labels, (0.0, 1.0))
    if bad.any():
        raise InputError(file, "label must be 0 or 1", row=_first_bad_row(bad), column=label)
    if len(np.unique(labels.astype(np.int64))) < 2:
        raise InputError(file, "label has a single class; nothing to learn", column=label)
    x = frame[features].to_numpy(dtype=np.float64, na_value=np.nan)
    bad_cells = ~np.isfinite(x)
    if bad_cells.any():
        row, col = np.argwhere(bad_cells)[0]
        raise InputError(file, "missing or non-finite value", row=int(row) + 1, column=features[col])
    y = labels.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0  # a constant column carries no signal; avoid dividing by zero
    return Split(
        x_train=((x_train - mean) / std).astype(np.float32), y_train=y_train,
        x_test=((x_test - mean) / std).astype(np.float32), y_test=y_test,
        features=tuple(features), mean=mean, std=std,
    )
