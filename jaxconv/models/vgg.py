"""VGG (Simonyan and Zisserman, "Very deep convolutional networks for large-scale image
recognition", ICLR 2015), configurations A, B, D and E (VGG-11/13/16/19), with and without batch
norm, in torchvision's layout.

Every configuration shares one table of stage widths, 64-128-256-512-512, and differs only in
the number of 3x3 convolutions per stage; each stage ends with 2x2 max pooling. Then adaptive
average pooling to 7x7 (torchvision's, so inputs other than 224x224 still reach the classifier),
and the classifier 4096-4096-classes with ReLU and dropout 0.5 before the second and third layer
(after the first and second ReLU, as torchvision orders them). VGG-16 has 138,357,544 parameters
and VGG-16-BN 138,365,992 for 1000 classes; the batch-norm variants keep the convolution biases,
as torchvision does.

Dropout needs a 'dropout' RNG when `train=True`: `model.apply(v, x, train=True,
rngs={'dropout': key}, mutable=['batch_stats'])`.
"""

import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.layers import (
    ConvNormAct,
    Convolution,
    Dtype,
    adaptive_avg_pool,
    check_input_size,
    flatten_channels_first,
    pool,
    torch_padding,
)

STAGE_WIDTHS = (64, 128, 256, 512, 512)
STAGE_SIZES = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
# Five 2x2 poolings need at least 32 pixels to leave a 1x1 map.
MIN_INPUT_SIZE = 32


class VGG(nn.Module):
    """VGG on NHWC input; returns logits (N, num_classes).

    Stages are `stage1` ... `stage5` holding `conv1`, `conv2`, ... (each with `conv/` and, with
    batch norm, `norm/`); the classifier is `fc1`, `fc2`, `head`, with `classifier_widths` hidden
    units (smaller ones suit 32x32 images, whose 1x1 final map the adaptive pooling repeats 49
    times). The pooled 7x7 map is flattened in PyTorch's channel-major order, so torchvision's
    `classifier.0.weight` converts with a plain transpose. The feature maps 'stage1' ...
    'stage5' are sown (see `jaxconv.models.feature_maps`).
    """

    stage_sizes: Sequence[int]
    num_classes: int = 1000
    stage_widths: Sequence[int] = STAGE_WIDTHS
    batch_norm: bool = False
    classifier_widths: Sequence[int] = (4096, 4096)
    dropout_rate: float = 0.5
    convolution: Convolution = lax.conv_general_dilated
    batch_norm_axis: str | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_input_size(x.shape[1:3], MIN_INPUT_SIZE, "VGG")
        layer = dict(
            padding=torch_padding(3),
            batch_norm=self.batch_norm,
            use_bias=True,
            kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
            convolution=self.convolution,
            batch_norm_axis=self.batch_norm_axis,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        feature_maps = {}
        for index, (size, width) in enumerate(
            zip(self.stage_sizes, self.stage_widths, strict=True)
        ):
            name = f"stage{index + 1}"
            x = VGGStage(size, width, layer, name=name)(x, train=train)
            feature_maps[name] = x
        self.sow("intermediates", "feature_maps", feature_maps)
        x = flatten_channels_first(adaptive_avg_pool(x, (7, 7)))
        return classifier(self, x, self.classifier_widths, train)


class VGGStage(nn.Module):
    """`num_convs` 3x3 convolutions with ReLU named conv1, conv2, ..., then 2x2 max pooling."""

    num_convs: int
    features: int
    layer_options: dict

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        for index in range(self.num_convs):
            conv = ConvNormAct(self.features, 3, name=f"conv{index + 1}", **self.layer_options)
            x = conv(x, train=train)
        return pool(x, "max", 2)


def classifier(
    model: nn.Module, x: jax.Array, hidden_sizes: Sequence[int], train: bool
) -> jax.Array:
    """Dense layers fc1, fc2, ... with ReLU and dropout after each, then `head` (VGG's order).

    Called inside the model's compact method so the layers are the model's own children.
    """
    dense = dict(dtype=model.dtype, param_dtype=model.param_dtype)
    for index, width in enumerate(hidden_sizes):
        x = nn.relu(nn.Dense(width, name=f"fc{index + 1}", **dense)(x))
        x = nn.Dropout(model.dropout_rate, deterministic=not train)(x)
    return nn.Dense(model.num_classes, name="head", **dense)(x)


def vgg(depth: int, batch_norm: bool = False) -> Callable[..., nn.Module]:
    return functools.partial(VGG, stage_sizes=STAGE_SIZES[depth], batch_norm=batch_norm)


VGG16 = vgg(16)
VGG16BN = vgg(16, batch_norm=True)


def registry() -> dict[str, Callable[..., nn.Module]]:
    """vgg11, vgg13, vgg16, vgg19 and vgg11_bn ... vgg19_bn."""
    entries = {f"vgg{depth}": vgg(depth) for depth in STAGE_SIZES}
    entries.update({f"vgg{depth}_bn": vgg(depth, batch_norm=True) for depth in STAGE_SIZES})
    return entries
