"""Benchmarks: DP-SGD speed and utility against the same model without DP, and the attack gap.

Why in-process baselines: the machine is shared and noisy, so every ratio compares two
measurements taken in the same run, back to back, best of `repeats` for each side.

- `bench_dp`: throughput of fast-clipping DP-SGD vs plain Keras (same network, the same
  Poisson batches, optimizer), then held-out accuracy at a target epsilon (3, delta 1e-5)
  on the synthetic demo patients and on scikit-learn's breast-cancer data (mean over
  seeds, since a 114-row test set moves 0.9 points per example).
- `bench_mia`: a setting built to overfit (few training rows, a wide network, many
  epochs) where the loss-threshold attack finds the non-private model's members, and
  the DP model at the same epsilon, so the two attack AUCs can be compared.
"""
from __future__ import annotations

import time

import numpy as np

DEMO_LABEL = "readmitted"
UTILITY_DELTA = 1e-5


def _scaling_noise() -> float:
    """The DP scaling noise of a pipeline run at the default ε = 3 (the benchmarks measure DP-SGD,
    so their inputs are scaled as a default run scales them)."""
    from securepipe.training import accounting

    return accounting.release_noise(3.0, UTILITY_DELTA)["scaling"]


def _demo_split(n: int, seed: int):
    from securepipe.synth import generate_patients
    from securepipe.training import data

    return data.prepare(generate_patients(n, seed=seed), DEMO_LABEL, file=f"synth:generate_patients({n})", seed=seed,
                        scaling_noise_multiplier=_scaling_noise())


def _breast_cancer_split(seed: int):
    from sklearn.datasets import load_breast_cancer

    from securepipe.training import data

    frame = load_breast_cancer(as_frame=True).frame  # ships with scikit-learn, no download
    return data.prepare(frame, "target", file="sklearn:breast_cancer", seed=seed,
                        scaling_noise_multiplier=_scaling_noise())


def _throughput(split, *, batch_size: int, epochs: int, repeats: int, noise_multiplier: float) -> dict:
    """Examples per second of DP and non-private training on the same batches.

    Each repeat times the two back to back (order alternating). The reported rates are the
    best of the repeats (the least disturbed by other users of the machine) and the ratio is
    best over best; the median and range of the back-to-back ratios come along, to show how
    noisy the machine was.
    """
    from securepipe.training import model

    x = split.x_train
    networks = {
        "dp": model.build_network(x.shape[1], noise_multiplier=noise_multiplier),
        "nonprivate": model.build_network(x.shape[1], noise_multiplier=None),
    }
    batches, steps = model.poisson_batches(x, split.y_train, batch_size)  # the same batches feed both
    for network in networks.values():  # trace the train step outside the timed region
        network.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0)
    rates = {name: [] for name in networks}
    for repeat in range(repeats):
        order = list(networks) if repeat % 2 == 0 else list(reversed(networks))
        for name in order:
            started = time.perf_counter()
            networks[name].fit(batches, epochs=epochs, steps_per_epoch=steps, verbose=0)
            rates[name].append(epochs * len(x) / (time.perf_counter() - started))
    paired = [dp / plain for dp, plain in zip(rates["dp"], rates["nonprivate"])]
    return {
        "dp": max(rates["dp"]), "nonprivate": max(rates["nonprivate"]),
        "ratio": max(rates["dp"]) / max(rates["nonprivate"]),
        "paired_ratio_median": float(np.median(paired)), "paired_ratio_min": min(paired),
        "paired_ratio_max": max(paired),
    }


def _utility(split, *, target_epsilon: float, epochs: int, batch_size: int, seeds) -> dict:
    from securepipe.training import accounting, evaluate, model

    n = len(split.y_train)
    plan = accounting.noise_for_epsilon(target_epsilon, n, min(batch_size, n), epochs, UTILITY_DELTA)
    scores = {"dp": [], "nonprivate": []}
    for seed in seeds:
        for name, noise in (("dp", plan.noise_multiplier), ("nonprivate", None)):
            trained = model.fit(split.x_train, split.y_train, epochs=epochs, batch_size=plan.batch_size,
                                noise_multiplier=noise, seed=seed)
            scores[name].append(evaluate.utility(trained.predict_proba(split.x_test), split.y_test)["accuracy"])
    dp, nonprivate = float(np.mean(scores["dp"])), float(np.mean(scores["nonprivate"]))
    return {
        "epsilon": plan.epsilon, "delta": plan.delta, "noise_multiplier": plan.noise_multiplier,
        "dp_accuracy": dp, "nonprivate_accuracy": nonprivate, "gap_points": 100 * (nonprivate - dp),
        "rows_train": n, "rows_test": len(split.y_test), "seeds": len(scores["dp"]),
    }


def bench_dp(*, rows: int = 20000, epochs: int = 10, batch_size: int = 256, repeats: int = 5,
             target_epsilon: float = 3.0, utility_rows: int = 5000, utility_epochs: int = 60,
             seeds=(0, 1, 2), threads: int = 0) -> dict:
    """`threads` > 0 pins TensorFlow to that many CPU threads (0: its default, all cores)."""
    import tensorflow as tf

    from securepipe.training import accounting, model

    if threads:  # must precede TensorFlow's first use in this process
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    device = model.configure_device()
    speed_split = _demo_split(rows, seed=0)
    plan = accounting.noise_for_epsilon(target_epsilon, len(speed_split.y_train), batch_size, epochs, UTILITY_DELTA)
    rates = _throughput(speed_split, batch_size=batch_size, epochs=epochs, repeats=repeats,
                        noise_multiplier=plan.noise_multiplier)
    demo = _utility(_demo_split(utility_rows, seed=1), target_epsilon=target_epsilon, epochs=utility_epochs,
                    batch_size=batch_size, seeds=seeds)
    breast_cancer = _utility(_breast_cancer_split(seed=0), target_epsilon=target_epsilon,
                             epochs=utility_epochs, batch_size=batch_size, seeds=seeds)
    return {
        "bench": "dp",
        "device": device,
        "dp_examples_per_s": rates["dp"],
        "nonprivate_examples_per_s": rates["nonprivate"],
        "ratio": rates["ratio"],
        "throughput_setting": {"rows_train": len(speed_split.y_train), "batch_size": batch_size,
                               "epochs_timed": epochs, "repeats": repeats, "clipping": "fast (layer registry)",
                               "cpu_threads": threads or "default",
                               "statistic": "best of repeats; ratio = best dp / best non-private",
                               **{k: v for k, v in rates.items() if k.startswith("paired_")}},
        "epsilon": demo["epsilon"],
        "delta": demo["delta"],
        "dp_accuracy": demo["dp_accuracy"],
        "nonprivate_accuracy": demo["nonprivate_accuracy"],
        "demo": demo,
        "breast_cancer": breast_cancer,
    }


def bench_mia(*, rows: int = 500, train_fraction: float = 0.4, hidden=(256, 256), epochs: int = 300,
              batch_size: int = 50, target_epsilon: float = 3.0, seed: int = 0) -> dict:
    """Loss-threshold attack AUC on a model built to overfit, with and without DP."""
    from securepipe.training import accounting, data, evaluate, model
    from securepipe.synth import generate_patients

    device = model.configure_device()
    split = data.prepare(generate_patients(rows, seed=seed), DEMO_LABEL, file=f"synth:generate_patients({rows})",
                         test_fraction=1 - train_fraction, seed=seed, scaling_noise_multiplier=_scaling_noise())
    n = len(split.y_train)
    plan = accounting.noise_for_epsilon(target_epsilon, n, batch_size, epochs, UTILITY_DELTA)
    result = {"bench": "mia", "device": device, "rows_train": n, "rows_test": len(split.y_test),
              "hidden": list(hidden), "epochs": epochs, "batch_size": batch_size,
              "epsilon": plan.epsilon, "delta": plan.delta, "noise_multiplier": plan.noise_multiplier}
    for name, noise in (("dp", plan.noise_multiplier), ("nonprivate", None)):
        trained = model.fit(split.x_train, split.y_train, epochs=epochs, batch_size=batch_size,
                            noise_multiplier=noise, hidden=hidden, seed=seed)
        scores = evaluate.evaluate(trained, split)
        result.update({f"{name}_mia_auc": scores["mia_auc"], f"{name}_mia_advantage": scores["mia_advantage"],
                       f"{name}_accuracy": scores["accuracy"]})
    result["mia_attack"] = "loss-threshold (Yeom et al. 2018)"
    return result
