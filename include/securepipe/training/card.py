"""Model card: what was trained on what, with which privacy guarantee, and how it scored.

Threat model: the card is evidence read by people outside the plaintext boundary
(auditors, model consumers), so it carries hashes, counts, column names and parameters
only: never a record value, a key or a decrypted byte. It is written atomically as JSON
(for machines, the DAG and the compliance report) and Markdown (for people).
"""
from __future__ import annotations

import datetime as _dt
import json
import subprocess
from pathlib import Path

from securepipe.storage import atomic_write

CARD_JSON = "model_card.json"
CARD_MARKDOWN = "model_card.md"
SCHEMA = "securepipe.model_card/1"


def code_version() -> str:
    """The git commit of the package (with '+dirty' for local changes), else the package version."""
    import securepipe

    here = Path(securepipe.__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        return f"git:{sha}{'+dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return f"securepipe {securepipe.__version__}"


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    return str(value)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")  # column and category names are data: keep the table intact


def _output(data: dict) -> str:
    classes = data.get("classes", ["0", "1"])
    if len(classes) == 2:
        return f"probability of `{data['label']}` = {classes[1]}"
    return f"one probability per class of `{data['label']}` ({', '.join(classes)})"


def render_markdown(card: dict) -> str:
    privacy, data = card["privacy"], card["data"]
    lines = [
        f"# Model card: {card['model']['name']}",
        "",
        f"Created {card['created_at']} with code {card['code_version']} on device {card['device']}.",
        "",
        "## Privacy",
        "",
        privacy["statement"],
        "",
        "| parameter | value |",
        "|---|---|",
    ]
    for key in ("epsilon", "delta", "noise_multiplier", "l2_norm_clip", "sampling_rate", "batch_size",
                "epochs", "steps", "accountant", "sampling"):
        lines.append(f"| {key} | {_fmt(privacy[key])} |")
    lines += ["", "## Data lineage", "", "| item | value |", "|---|---|"]
    for key in ("file_sha256", "encrypted", "label", "rows_train", "rows_test", "masking_policy_sha256"):
        lines.append(f"| {key} | {_fmt(data.get(key))} |")
    lines.append(f"| classes | {', '.join(data.get('classes', ['0', '1']))} |")
    lines.append(f"| features | {_cell(', '.join(data['features']))} |")
    lines += ["", "## Columns", "", "Which columns the model uses, and why the others are left out.", "",
              "| column | use |", "|---|---|"]
    lines += [f"| {_cell(column)} | {role} |" for column, role in data.get("columns", {}).items()]
    released = card["released_metrics"]
    lines += [
        "", "## Evaluation (held-out split)", "",
        f"Accuracy {_fmt(released['accuracy'])} (differentially private: {released['mechanism']}, noise standard "
        f"deviation {_fmt(released['accuracy_noise_std'])} in accuracy; inside the epsilon above). Other evaluation "
        "figures (AUC, calibration, the membership-inference attack AUC the privacy gate checks) are not released.",
        "",
        "## Artifact",
        "",
        f"Model file `{card['model']['file']}`, sha256 `{card['model']['sha256']}`, "
        f"encrypted: {card['model']['encrypted']}. Input: the features above (numbers as they are, categories "
        f"as 0/1 indicators); output: {_output(data)}. Architecture: {card['model']['architecture']}.",
        "",
    ]
    return "\n".join(lines)


def write_card(out_dir, card: dict) -> Path:
    """Write model_card.json and model_card.md into `out_dir`; returns the JSON path."""
    out = Path(out_dir)
    with atomic_write(out / CARD_MARKDOWN, "w") as handle:
        handle.write(render_markdown(card))
    with atomic_write(out / CARD_JSON, "w") as handle:
        json.dump(card, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return out / CARD_JSON
