"""Evaluation: held-out utility, calibration, and a membership-inference attack.

Threat model: a model consumer who holds the model and a person's record tries to tell
whether that record was in the training set. The loss-threshold attack (Yeom et al.,
CSF 2018) does exactly that: training members tend to have lower loss. Its AUC over
members (the training split) versus non-members (the held-out split, never seen in
training or standardisation) is 0.5 for a model that leaks nothing measurable this way
and approaches 1.0 for a model that memorises. It is an empirical lower bound on the
leak, not a proof: DP's epsilon is the guarantee; this number shows the guarantee is
not only on paper. Stronger attacks (LiRA with shadow models) can score higher.
"""
from __future__ import annotations

import secrets

import numpy as np

CALIBRATION_BINS = 10
_LOSS_FLOOR = 1e-7


def per_example_loss(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy of each example: binary for P(class 1) per example, categorical for a row
    of class probabilities per example."""
    labels = np.asarray(labels)
    if probabilities.ndim == 2:
        p = np.clip(probabilities[np.arange(len(labels)), labels.astype(np.int64)], _LOSS_FLOOR, 1.0)
        return -np.log(p)
    p = np.clip(probabilities, _LOSS_FLOOR, 1 - _LOSS_FLOOR)
    return -(labels * np.log(p) + (1 - labels) * np.log(1 - p))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """ECE: the bin-weighted gap between mean predicted probability and observed frequency (for
    multi-class models, of the top class's probability against how often it is right)."""
    if probabilities.ndim == 2:
        labels = (probabilities.argmax(axis=1) == labels).astype(np.float64)
        probabilities = probabilities.max(axis=1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += in_bin.mean() * abs(probabilities[in_bin].mean() - labels[in_bin].mean())
    return float(total)


def utility(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy (threshold 0.5, or the top class), ROC AUC (one-vs-rest macro for multi-class;
    None when a class is absent from the held-out split), expected calibration error, Brier score."""
    from sklearn.metrics import roc_auc_score

    if probabilities.ndim == 2:
        labels = np.asarray(labels, dtype=np.int64)
        onehot = np.eye(probabilities.shape[1])[labels]
        try:
            auc = float(roc_auc_score(labels, probabilities, multi_class="ovr",
                                      labels=np.arange(probabilities.shape[1])))
        except ValueError:
            auc = None
        return {
            "accuracy": float(np.mean(probabilities.argmax(axis=1) == labels)),
            "auc": auc,
            "ece": expected_calibration_error(probabilities, labels),
            "brier": float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1))),
        }
    labels = np.asarray(labels, dtype=np.float64)
    return {
        "accuracy": float(np.mean((probabilities >= 0.5) == labels)),
        "auc": float(roc_auc_score(labels, probabilities)),
        "ece": expected_calibration_error(probabilities, labels),
        "brier": float(np.mean((probabilities - labels) ** 2)),
    }


def loss_threshold_attack(
    member_probabilities: np.ndarray, member_labels: np.ndarray,
    nonmember_probabilities: np.ndarray, nonmember_labels: np.ndarray,
) -> dict:
    """AUC and best advantage (max TPR - FPR) of guessing 'member' when the loss is low."""
    from sklearn.metrics import roc_auc_score, roc_curve

    scores = -np.concatenate([
        per_example_loss(member_probabilities, member_labels),
        per_example_loss(nonmember_probabilities, nonmember_labels),
    ])
    truth = np.concatenate([np.ones(len(member_labels)), np.zeros(len(nonmember_labels))])
    fpr, tpr, _ = roc_curve(truth, scores)
    return {
        "mia_auc": float(roc_auc_score(truth, scores)),
        "mia_advantage": float(np.max(tpr - fpr)),
        "mia_attack": "loss-threshold (Yeom et al. 2018)",
        "mia_members": int(len(member_labels)),
        "mia_nonmembers": int(len(nonmember_labels)),
    }


def evaluate(trained, split) -> dict:
    """Held-out utility of a `model.TrainedModel` and its membership-inference exposure."""
    test_p = trained.predict_proba(split.x_test)
    train_p = trained.predict_proba(split.x_train)
    return {**utility(test_p, split.y_test), **loss_threshold_attack(train_p, split.y_train, test_p, split.y_test)}


def dp_accuracy(trained, split, noise_multiplier: float) -> dict:
    """The held-out accuracy as released: the count of correct predictions plus Gaussian noise.

    Adding or removing one held-out row changes the count by at most one (sensitivity 1), so
    the noise standard deviation is the noise multiplier the accountant composes
    (accounting.RELEASE_EPSILON_SHARES["accuracy"]). The number of held-out rows is public.
    """
    probabilities = trained.predict_proba(split.x_test)
    predicted = probabilities.argmax(axis=1) if probabilities.ndim == 2 else (probabilities >= 0.5).astype(np.int64)
    correct = float(np.sum(predicted == split.y_test))
    # Fresh OS entropy, never the run's seed: noise a reader can regenerate protects nothing.
    noisy = correct + np.random.default_rng(secrets.randbits(128)).normal(0.0, noise_multiplier)
    n = len(split.y_test)
    return {"accuracy": float(np.clip(noisy / n, 0.0, 1.0)), "accuracy_noise_std": noise_multiplier / n,
            "mechanism": "Gaussian, sensitivity 1 on the count of correct held-out predictions"}
