"""The profile of an accepted dataset: what a new batch is compared with before any ε is spent.

A profile is built from one accepted (reference) batch and holds, per feature column, the
schema contract (type, observed range, allowed categories, null rate), the distribution
(decile bins for numbers, shares for categories), the most frequent values, the label's
class shares, and the reference's own duplicate, near-duplicate, outlier and label-noise
rates: the checks compare a new batch with these rates, so a dataset that is naturally
noisy or coarse does not raise alarms by itself.

Which columns are features is decided exactly as training decides it
(`securepipe.training.data.column_roles`): numbers and low-cardinality categories; masked
identifiers, free text and identifier-like columns are not profiled.

Threat model: the profile holds aggregates and category values of the dataset, so it is
evidence to protect, not to publish. It is signed with the evidence key (HMAC, as audit
entries and manifests are: a profile an attacker rewrites to fit a poisoned batch does not
verify) and stored envelope-encrypted under the dataset's KMS key with an encryption
context naming its dataset and purpose (see `store.py`).
"""
from __future__ import annotations

import datetime as _dt

import numpy as np
import pandas as pd

from securepipe.errors import InputError
from securepipe.training.data import MISSING, column_roles, numbers_from_text

PROFILE_FORMAT = "securepipe.data_profile/1"
DECILES = np.linspace(0.1, 0.9, 9)
TOP_VALUES = 25
# Rates that need neighbours (near-duplicates, label noise) depend on how densely rows are
# sampled, so reference and new batches are measured on samples of the same size.
SAMPLE_ROWS = 2000
MAX_SAMPLES = 5
NEIGHBOURS = 10
NEAR_DUPLICATE_DISTANCE = 0.05  # in robust-scaled units, over all features (a copy with jitter)
OUTLIER_Z = 6.0  # robust z-score (median / 1.4826 MAD) beyond which a value is an outlier
SAMPLE_SEED = 0


def prepare_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers written as text become numbers, as training reads them."""
    return numbers_from_text(frame.copy())


def label_keys(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), MISSING).astype(str).str.strip()


def _robust_scale(values: np.ndarray) -> tuple[float, float]:
    center = float(np.nanmedian(values))
    spread = float(np.nanmedian(np.abs(values - center))) * 1.4826
    if not spread > 0:
        spread = float(np.nanstd(values)) or 1.0
    return center, spread


def _numeric_entry(values: pd.Series) -> dict:
    present = values.dropna().astype("float64").to_numpy()
    center, scale = _robust_scale(present)
    edges = np.unique(np.quantile(present, DECILES))
    counts = values.dropna().astype("float64").value_counts(normalize=True)
    top = counts.head(TOP_VALUES)
    bins = np.searchsorted(edges, present, side="right")
    distinct = [len(np.unique(present[bins == b])) for b in range(len(edges) + 1)]
    return {
        "min": float(present.min()), "max": float(present.max()), "null_rate": float(values.isna().mean()),
        "center": center, "scale": scale, "edges": edges.tolist(),
        "shares": bin_shares(present, edges).tolist(),
        # A value's expected share: exact for the most frequent values, else its bin's share spread
        # over the distinct values the reference has in that bin (what a value spike is measured from).
        "top_values": {repr(float(v)): float(s) for v, s in top.items()},
        "distinct_per_bin": distinct,
    }


def _categorical_entry(values: pd.Series) -> dict:
    keys = label_keys(values)
    return {"null_rate": float(values.isna().mean()),
            "shares": {k: float(s) for k, s in keys.value_counts(normalize=True).items()}}


def expected_share(entry: dict, value: float) -> float:
    """How often the reference suggests one exact value occurs (see `_numeric_entry`)."""
    known = entry["top_values"].get(repr(float(value)))
    if known is not None:
        return known
    b = int(np.searchsorted(np.asarray(entry["edges"], dtype=np.float64), value, side="right"))
    return entry["shares"][b] / max(entry["distinct_per_bin"][b], 1)


def bin_shares(values: np.ndarray, edges) -> np.ndarray:
    """Share of values in each bin: below the first edge, between edges, above the last."""
    bins = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")
    return np.bincount(bins, minlength=len(edges) + 1) / max(len(values), 1)


def feature_matrix(frame: pd.DataFrame, profile: dict) -> np.ndarray:
    """Rows as vectors: numbers robust-scaled by the reference's median and MAD, categories one-hot."""
    blocks = []
    for column, entry in profile["numeric"].items():
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64) \
            if column in frame else np.full(len(frame), np.nan)
        blocks.append(((np.where(np.isnan(values), entry["center"], values) - entry["center"]) / entry["scale"])[:, None])
    for column, entry in profile["categorical"].items():
        keys = label_keys(frame[column]).to_numpy() if column in frame else np.full(len(frame), MISSING)
        blocks.append((keys[:, None] == np.array(list(entry["shares"]), dtype=object)[None, :]).astype(np.float64))
    return np.hstack(blocks) if blocks else np.zeros((len(frame), 0))


def disjoint_samples(n: int) -> list[np.ndarray]:
    """Up to `MAX_SAMPLES` disjoint random samples of `SAMPLE_ROWS` rows (one smaller one for a small batch).

    Neighbour-based rates are averaged over them: a larger batch is measured more precisely
    at the same density, and the work stays bounded by MAX_SAMPLES x SAMPLE_ROWS^2."""
    order = np.random.default_rng(SAMPLE_SEED).permutation(n)
    if n <= SAMPLE_ROWS:
        return [np.sort(order)]
    return [np.sort(order[i * SAMPLE_ROWS:(i + 1) * SAMPLE_ROWS]) for i in range(min(n // SAMPLE_ROWS, MAX_SAMPLES))]


def nearest_neighbours(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices of each row's k nearest other rows (brute force, in blocks)."""
    k = min(k, len(x) - 1)
    squared = np.einsum("ij,ij->i", x, x)
    dist, index = np.empty((len(x), k)), np.empty((len(x), k), dtype=np.int64)
    for start in range(0, len(x), 512):
        block = slice(start, start + 512)
        d2 = squared[block, None] + squared[None, :] - 2.0 * x[block] @ x.T
        d2[np.arange(d2.shape[0]), np.arange(start, start + d2.shape[0])] = np.inf  # not itself
        nearest = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < len(x) - 1 else np.argsort(d2, axis=1)[:, :k]
        dist[block] = np.sqrt(np.maximum(np.take_along_axis(d2, nearest, axis=1), 0.0))
        index[block] = nearest
    return dist, index


def batch_rates(frame: pd.DataFrame, profile: dict) -> dict:
    """The rates the checks compare: duplicates, near-duplicates, outliers, kNN label agreement per class."""
    features = list(profile["numeric"]) + list(profile["categorical"])
    present = [c for c in features if c in frame]
    label = profile["label"]
    rates = {"duplicates": float(frame.duplicated(subset=present + [label]).mean()) if len(frame) else 0.0}
    near, lifts = [], {}
    for rows in disjoint_samples(len(frame)) if len(frame) > NEIGHBOURS else []:
        x = feature_matrix(frame.iloc[rows], profile)
        labels = label_keys(frame[label].iloc[rows]).to_numpy()
        dist, index = nearest_neighbours(x, NEIGHBOURS)
        near.append(float((dist[:, 0] <= NEAR_DUPLICATE_DISTANCE * np.sqrt(x.shape[1])).mean()))
        # Agreement of a class's rows with their neighbours' labels above what the class's share
        # alone gives (0: neighbours say nothing about the label; 1: they always agree). Flipped
        # labels lower it for every class; plain disagreement would also move with class shares.
        agree = (labels[index] == labels[:, None]).mean(axis=1)
        for c in np.unique(labels):
            share = (labels == c).mean()
            lifts.setdefault(str(c), []).append(float((agree[labels == c].mean() - share) / max(1 - share, 1e-9)))
    rates["near_duplicates"] = float(np.mean(near)) if near else 0.0
    rates["label_agreement_lift"] = {c: float(np.mean(v)) for c, v in lifts.items()}
    x = feature_matrix(frame, profile)
    numeric = x[:, :len(profile["numeric"])]
    rates["outliers"] = float((np.abs(numeric) > OUTLIER_Z).any(axis=1).mean()) if numeric.size else 0.0
    return rates


def build_profile(frame: pd.DataFrame, label: str, *, file: str = "reference") -> dict:
    """The profile of an accepted batch (see the module docstring)."""
    if label not in frame.columns:
        raise InputError(file, "label column is missing", column=label)
    if len(frame) < 2 * NEIGHBOURS:
        raise InputError(file, f"a reference needs at least {2 * NEIGHBOURS} rows, has {len(frame)}")
    frame = prepare_frame(frame)
    roles = column_roles(frame, label)
    profile = {
        "format": PROFILE_FORMAT,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "label": label, "rows": int(len(frame)), "columns": list(map(str, frame.columns)),
        "numeric": {c: _numeric_entry(frame[c]) for c, role in roles.items() if role == "numeric"},
        "categorical": {c: _categorical_entry(frame[c]) for c, role in roles.items() if role == "categorical"},
        "label_shares": {k: float(s) for k, s in label_keys(frame[label]).value_counts(normalize=True).items()},
    }
    if not profile["numeric"] and not profile["categorical"]:
        raise InputError(file, "no numeric or categorical feature columns to profile besides the label")
    profile["rates"] = batch_rates(frame, profile)
    return profile
