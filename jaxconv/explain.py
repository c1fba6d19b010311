"""What in an image a classifier looked at: Grad-CAM at a named stage, and input gradients.

Grad-CAM (Selvaraju et al., ICCV 2017): for the feature maps A_k of a stage and the logit y_c
of a class, the weights are the spatial means of dy_c / dA_k, and the map is
ReLU(sum_k weight_k A_k), resized to the image and scaled to [0, 1]. A stage is a submodule
by its path from the model ('stage3', 'conv2', 'encoder2'; `stages` lists a model's spatial
ones); its output is read and perturbed through `flax.linen.intercept_methods`, so no model
needs code of its own for it. Saliency (Simonyan et al., 2014) is |dy_c / dx|, its maximum
over the channels, scaled to [0, 1]. Both run the model in inference mode.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxconv import models
from jaxconv.errors import ConfigError


def stages(model, variables, images) -> list[str]:
    """The model's sown feature maps that are images (N, H, W, C), from the input down."""
    _, maps = models.feature_maps(model, variables, images)
    return [name for name, value in maps.items() if np.ndim(value) == 4]


def _with_stage(model, variables, images, stage: str, delta):
    """(logits, the stage's output) with `delta` added to that output (None: nothing)."""
    seen = {}

    def interceptor(next_fun, args, kwargs, context):
        output = next_fun(*args, **kwargs)
        path = "/".join(context.module.path)
        if context.method_name != "__call__" or path != stage or "output" in seen:
            return output
        seen["output"] = output
        return output if delta is None else output + delta

    with nn.intercept_methods(interceptor):
        logits = model.apply(variables, images, train=False)
    if "output" not in seen:
        raise ConfigError(
            f"the model has no submodule '{stage}' to explain; its stages are "
            f"{', '.join(stages(model, variables, images)) or 'none'}."
        )
    return logits, seen["output"]


def _chosen(logits, classes):
    """One-hot rows of the classes to explain: `classes`, or each image's top class."""
    chosen = jnp.argmax(logits, axis=-1) if classes is None else jnp.asarray(classes)
    return jax.nn.one_hot(chosen, logits.shape[-1], dtype=logits.dtype), chosen


def grad_cam(model, variables, images, stage: str, classes=None) -> tuple[np.ndarray, np.ndarray]:
    """(maps (N, H, W) in [0, 1] at the images' size, the classes explained (N,)) for NHWC
    `images`, normalised as the model takes them; `classes` default to the predicted ones."""
    images = jnp.asarray(images, jnp.float32)
    logits, activations = _with_stage(model, variables, images, stage, None)
    one_hot, chosen = _chosen(logits, classes)

    def logits_of(delta):
        return _with_stage(model, variables, images, stage, delta)[0]

    _, pullback = jax.vjp(logits_of, jnp.zeros_like(activations))
    (gradients,) = pullback(one_hot)
    weights = gradients.mean(axis=(1, 2), keepdims=True)
    maps = jax.nn.relu((weights * activations).sum(axis=-1))
    resized = jax.image.resize(maps, (len(images), *images.shape[1:3]), "bilinear")
    return _unit_scaled(resized), np.asarray(chosen)


def saliency(model, variables, images, classes=None) -> tuple[np.ndarray, np.ndarray]:
    """(|d logit / d input| maxed over channels (N, H, W) in [0, 1], the classes explained)."""
    images = jnp.asarray(images, jnp.float32)
    logits = model.apply(variables, images, train=False)
    one_hot, chosen = _chosen(logits, classes)
    _, pullback = jax.vjp(lambda x: model.apply(variables, x, train=False), images)
    (gradients,) = pullback(one_hot)
    return _unit_scaled(jnp.abs(gradients).max(axis=-1)), np.asarray(chosen)


def _unit_scaled(maps) -> np.ndarray:
    """Each (H, W) map divided by its maximum (a map of zeros stays zeros)."""
    maps = np.asarray(maps, np.float32)
    top = maps.reshape(len(maps), -1).max(axis=1)[:, None, None]
    return np.where(top > 0, maps / np.where(top > 0, top, 1), 0.0)
