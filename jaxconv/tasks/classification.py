"""Image classification: softmax cross-entropy on class logits.

Metrics are `(sum, count)` pairs so they add up across batches, devices and hosts, and a
`mask` (1 for real examples, 0 for evaluation padding) keeps padded rows out of both.
"""

import jax.numpy as jnp
import optax


def loss_and_metrics(logits: jnp.ndarray, batch: dict) -> tuple[jnp.ndarray, dict]:
    """Mean cross-entropy over real examples, and loss/accuracy as (sum, count) pairs.

    Args:
      logits: (N, num_classes), cast to float32 here so bfloat16 models lose no precision in
        the softmax.
      batch: `label` (N,) integer classes; optional `mask` (N,).
    """
    logits = logits.astype(jnp.float32)
    labels = batch["label"]
    mask = batch.get("mask", jnp.ones(labels.shape, jnp.float32))
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    count = mask.sum()
    loss = (losses * mask).sum() / jnp.maximum(count, 1.0)
    metrics = {"loss": ((losses * mask).sum(), count), "accuracy": ((correct * mask).sum(), count)}
    return loss, metrics
