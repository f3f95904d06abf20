"""The pipeline's model: a small MLP on the prepared features, trained with DP-SGD (or without, to compare).

Binary labels get one logit (sigmoid, binary cross-entropy); labels with k > 2 classes get
k logits (softmax, sparse categorical cross-entropy). `predict_proba` returns P(class 1)
for binary models and one row of k probabilities per example otherwise.

Threat model: a model consumer must not learn whether a person was in the training data.
DP-SGD bounds that: each example's gradient is clipped to `l2_norm_clip` and Gaussian
noise of `noise_multiplier * l2_norm_clip` is added to every summed batch gradient. The
noise multiplier comes from `accounting.noise_for_epsilon`; this module only applies it.

Speed: TensorFlow Privacy's DP Keras model with FAST gradient clipping (a layer
registry; per-example gradient norms from one backward pass, Goodfellow 2015) runs near
non-private speed. The per-microbatch `DPKerasSGDOptimizer` path measured 50-100x slower
here, so it is not used. Fast clipping needs every trainable layer registered (Dense
is), a reduced loss (not reduction="none") and labels shaped like the output, (n, 1):
`build_network` refuses a model that would silently fall back to the slow path, and `fit`
reshapes the labels.

XLA is off (`use_xla=False`): the configuration measured at ~0.9x non-private speed on
CPU (`securepipe bench dp`). TensorFlow is imported inside functions because the same
package is imported in the Airflow environment, which has no TensorFlow.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("securepipe.training")

DEFAULT_HIDDEN = (32, 16)
DEFAULT_L2_NORM_CLIP = 3.0  # measured: 1.0 clips most gradients and skews calibration (ECE 0.2 on the demo data)
DEFAULT_LEARNING_RATE = 0.01


def configure_device() -> str:
    """Use a GPU when present (memory growth on, so co-located tasks can share it); else CPU.

    Returns a short description of the device for logs and the model card.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # TensorFlow already initialised the GPU in this process
            log.warning("GPU memory growth could not be set: the device was initialised earlier")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        device = f"GPU:0 ({details.get('device_name', 'unknown')}) of {len(gpus)}"
    else:
        device = "CPU"
    log.info("training device: %s", device)
    return device


@dataclass(frozen=True)
class TrainedModel:
    """A trained classifier: `network` outputs logits on standardised features."""

    network: object
    seconds: float
    examples_seen: int
    private: bool

    def predict_proba(self, x: np.ndarray, chunk: int = 65536) -> np.ndarray:
        # A direct call, not `predict`: no per-model tf.function tracing for a one-off pass.
        logits = np.concatenate([
            self.network(x[i:i + chunk].astype(np.float32), training=False).numpy()
            for i in range(0, len(x), chunk)
        ]).astype(np.float64)
        if logits.shape[1] == 1:
            return 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1), -60.0, 60.0)))  # clipped: exp() stays finite
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)


def _outputs(n_classes: int) -> int:
    return 1 if n_classes == 2 else n_classes


def _layers(n_features: int, hidden, n_classes: int = 2):
    import tensorflow as tf

    layers = [tf.keras.Input(shape=(n_features,))]
    layers += [tf.keras.layers.Dense(width, activation="relu") for width in hidden]
    layers.append(tf.keras.layers.Dense(_outputs(n_classes)))  # logits: the loss applies sigmoid/softmax stably
    return layers


def build_network(
    n_features: int, *, hidden=DEFAULT_HIDDEN, noise_multiplier: float | None,
    l2_norm_clip: float = DEFAULT_L2_NORM_CLIP, learning_rate: float = DEFAULT_LEARNING_RATE, n_classes: int = 2,
):
    """The compiled MLP: DP (fast clipping) when `noise_multiplier` is given, plain Keras when None."""
    import tensorflow as tf

    if noise_multiplier is None:
        network = tf.keras.Sequential(_layers(n_features, hidden, n_classes))
    else:
        from tensorflow_privacy.privacy.fast_gradient_clipping.layer_registry import make_default_layer_registry
        from tensorflow_privacy.privacy.keras_models.dp_keras_model import DPSequential

        network = DPSequential(
            l2_norm_clip=l2_norm_clip,
            noise_multiplier=noise_multiplier,
            use_xla=False,
            layer_registry=make_default_layer_registry(),
            layers=_layers(n_features, hidden, n_classes),
        )
        if not network._enable_fast_peg_computation:  # noqa: SLF001 - the only way TF Privacy exposes it
            raise RuntimeError("fast gradient clipping is off: a trainable layer is not in the layer registry")
    network.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=learning_rate),
        # A reduced loss (fast clipping recovers per-example losses itself), reduced by SUM:
        # the mechanism is then the noisy SUM of clipped gradients, exactly what the
        # accountant analyses; a mean would divide by the realised Poisson batch size, a
        # data-dependent number. Adam is invariant to the gradient's overall scale.
        loss=(tf.keras.losses.BinaryCrossentropy if n_classes == 2 else tf.keras.losses.SparseCategoricalCrossentropy)(
            from_logits=True, reduction=tf.keras.losses.Reduction.SUM),
        jit_compile=False,
    )
    return network


def poisson_batches(x: np.ndarray, y: np.ndarray, batch_size: int):
    """An endless dataset of Poisson-sampled batches: each example joins each batch independently
    with probability q = batch_size / n, so batch sizes vary around `batch_size`.

    This is the sampling the accountant analyses. Sampling runs inside the TensorFlow graph
    (a Bernoulli mask over the n rows per step), so it costs O(n) per step and no Python.
    Returns the dataset and the steps that make one epoch, ceil(n / batch_size).
    """
    import tensorflow as tf

    n = len(x)
    q = batch_size / n
    features = tf.constant(x, dtype=tf.float32)
    labels = tf.constant(np.asarray(y, dtype=np.float32).reshape(-1, 1))  # shaped like the (n, 1) output

    def sample(_):
        chosen = tf.random.uniform([n]) < q
        return tf.boolean_mask(features, chosen), tf.boolean_mask(labels, chosen)

    dataset = tf.data.Dataset.range(1).repeat().map(sample).prefetch(tf.data.AUTOTUNE)
    return dataset, math.ceil(n / batch_size)


def fit(
    x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int, noise_multiplier: float | None,
    hidden=DEFAULT_HIDDEN, l2_norm_clip: float = DEFAULT_L2_NORM_CLIP,
    learning_rate: float = DEFAULT_LEARNING_RATE, seed: int | None = None, n_classes: int = 2,
) -> TrainedModel:
    """Train on (x, y) with Poisson-sampled batches; `noise_multiplier=None` trains without DP.
    `y` holds class indices (0/1 for a binary label).

    `seed=None` (every pipeline run) leaves TensorFlow's random state to the operating system's
    entropy: DP-SGD's guarantee needs noise no one can regenerate, and a known seed would let anyone
    who holds the model and the seed subtract it. A seed is for experiments and tests only."""
    import tensorflow as tf

    if x.ndim != 2 or len(x) != len(y):
        raise ValueError("features must be a 2-D array with one row per label")
    if seed is not None:
        tf.keras.utils.set_random_seed(seed)
    else:
        tf.random.set_seed(None)  # forget any seed an earlier call in this process fixed
    network = build_network(
        x.shape[1], hidden=hidden, noise_multiplier=noise_multiplier,
        l2_norm_clip=l2_norm_clip, learning_rate=learning_rate, n_classes=n_classes,
    )
    batches, steps_per_epoch = poisson_batches(x, y, batch_size)
    started = time.perf_counter()
    network.fit(batches, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=0)
    seconds = time.perf_counter() - started
    return TrainedModel(network, seconds, epochs * len(x), noise_multiplier is not None)


def export_network(trained: TrainedModel, mean: np.ndarray, std: np.ndarray):
    """A plain Keras model for serving: raw features in, probability (per class) out.

    The standardisation fitted on the training split is baked in, and the DP wrapper is
    dropped (it only matters for training), so the saved file loads with stock Keras.
    """
    import tensorflow as tf

    source = trained.network
    n_features = source.input_shape[-1]
    hidden = [layer.units for layer in source.layers[:-1]]
    outputs = source.layers[-1].units
    n_classes = 2 if outputs == 1 else outputs
    served = tf.keras.Sequential(
        [tf.keras.Input(shape=(n_features,)),
         tf.keras.layers.Normalization(mean=mean.astype(np.float32), variance=np.square(std).astype(np.float32))]
        + _layers(n_features, hidden, n_classes)[1:]
        + [tf.keras.layers.Activation("sigmoid" if outputs == 1 else "softmax")]
    )
    for target, origin in zip(served.layers[1:-1], source.layers):
        target.set_weights(origin.get_weights())
    return served
