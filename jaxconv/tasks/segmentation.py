"""Semantic segmentation: a class per pixel.

Loss: per-pixel softmax cross-entropy, optionally weighted per class (`class_weights`, the
weighted mean over pixels, as PyTorch's `CrossEntropyLoss(weight=...)` computes it), plus
`dice_weight` times the soft Dice loss averaged over classes (Milletari et al., 2016).
Metrics: pixel accuracy, and per-class intersection and union summed over the whole evaluation
set, from which `summarise` gives each class's IoU and their mean (classes absent from both
prediction and truth are left out of the mean).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax


def _pixel_mask(batch: dict, labels: jnp.ndarray) -> jnp.ndarray:
    """1 for pixels of real examples, 0 for evaluation padding, shaped like `labels`."""
    mask = batch.get("mask", jnp.ones(labels.shape[:1], jnp.float32))
    return jnp.broadcast_to(mask.reshape(-1, *([1] * (labels.ndim - 1))), labels.shape)


def dice_loss(
    probabilities: jnp.ndarray, one_hot: jnp.ndarray, pixel_mask: jnp.ndarray, epsilon: float = 1.0
) -> jnp.ndarray:
    """1 - mean over classes of (2|P∩Y| + eps) / (|P| + |Y| + eps), over the whole batch."""
    weights = pixel_mask[..., None]
    axes = tuple(range(probabilities.ndim - 1))
    intersection = (probabilities * one_hot * weights).sum(axes)
    total = (probabilities * weights).sum(axes) + (one_hot * weights).sum(axes)
    return 1.0 - jnp.mean((2.0 * intersection + epsilon) / (total + epsilon))


def loss_and_metrics(
    logits: jnp.ndarray, batch: dict, *, class_weights=(), dice_weight: float = 0.0
) -> tuple[jnp.ndarray, dict]:
    """logits (N, H, W, classes); batch `label` (N, H, W) integer classes, optional `mask` (N,)."""
    logits = logits.astype(jnp.float32)
    labels = batch["label"].astype(jnp.int32)
    num_classes = logits.shape[-1]
    pixel_mask = _pixel_mask(batch, labels)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    weights = pixel_mask
    if class_weights:
        weights = weights * jnp.asarray(class_weights, jnp.float32)[labels]
    loss = (losses * weights).sum() / jnp.maximum(weights.sum(), 1e-12)
    one_hot = jax.nn.one_hot(labels, num_classes)
    if dice_weight:
        loss = loss + dice_weight * dice_loss(jax.nn.softmax(logits), one_hot, pixel_mask)

    predicted = jax.nn.one_hot(jnp.argmax(logits, axis=-1), num_classes)
    axes = tuple(range(labels.ndim))
    intersection = (predicted * one_hot * pixel_mask[..., None]).sum(axes)
    union = ((predicted + one_hot) * pixel_mask[..., None]).sum(axes) - intersection
    pixels = pixel_mask.sum()
    correct = ((jnp.argmax(logits, axis=-1) == labels) * pixel_mask).sum()
    metrics = {
        "loss": ((losses * pixel_mask).sum(), pixels),
        "pixel_accuracy": (correct, pixels),
        "iou": (intersection, union),
    }
    return loss, metrics


def summarise(means: dict) -> dict[str, float]:
    """Spreads the per-class IoU vector into `iou_<class>` entries and adds `miou`."""
    out = {name: float(value) for name, value in means.items() if np.ndim(value) == 0}
    if "iou" in means:
        per_class = np.asarray(means["iou"], np.float64)
        for index, value in enumerate(per_class):
            out[f"iou_{index}"] = float(value)
        out["miou"] = float(np.nanmean(per_class)) if np.isfinite(per_class).any() else 0.0
    return out
