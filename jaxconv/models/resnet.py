"""ResNet (He, Zhang, Ren and Sun, "Deep residual learning for image recognition", CVPR 2016) and
its plain twins (the same layers without skip connections, the paper's Sec. 4.1 baselines).

ImageNet models follow torchvision's layout, ResNet v1.5: the stride of a bottleneck block sits on
its 3x3 convolution (the paper put it on the first 1x1), and shortcuts that change shape are 1x1
projections with batch norm (the paper's option B). For 1000 classes and 3 input channels:
ResNet-18/34/50/101/152 have 11,689,512 / 21,797,672 / 25,557,032 / 44,549,160 / 60,192,808
parameters. Padding is PyTorch's symmetric k // 2 so converted torchvision weights give the same
activations.

The CIFAR models (Sec. 4.2): a 3x3 stem of 16 channels, three stages of n basic blocks with 16, 32
and 64 channels (depth 6n + 2), global average pooling and the classifier, and parameter-free
shortcuts that subsample and zero-pad channels (option A): ResNet-20 has 0.27M parameters and
ResNet-56 0.85M, as in the paper's Table 6.

The last batch-norm scale of every residual block starts at zero (Goyal et al. 2017, as in the Flax
ImageNet example), so each block starts as the identity. Plain twins keep the standard init of one:
without a skip connection a zero scale would cut the signal. The parameter count of a plain twin
equals its residual model's minus the projection shortcuts.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.layers import (
    Conv,
    ConvNormAct,
    Convolution,
    Dtype,
    batch_norm,
    he_normal,
    torch_padding,
)

ModuleDef = Any
SHORTCUTS = ("projection", "zero_pad")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (conv1, conv2), each followed by batch norm (norm1, norm2)."""

    features: int
    conv: ModuleDef
    norm: ModuleDef
    strides: int = 1
    residual: bool = True
    shortcut: str = "projection"
    expansion: ClassVar[int] = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.conv(self.features, (3, 3), self.strides, torch_padding(3), name="conv1")(x)
        y = nn.relu(self.norm(name="norm1")(y))
        y = self.conv(self.features, (3, 3), 1, torch_padding(3), name="conv2")(y)
        y = self.norm(scale_init=last_norm_init(self.residual), name="norm2")(y)
        return nn.relu(add_shortcut(self, x, y))


class Bottleneck(nn.Module):
    """1x1 reduce (conv1), 3x3 with the stride (conv2, v1.5), 1x1 expand by 4 (conv3)."""

    features: int
    conv: ModuleDef
    norm: ModuleDef
    strides: int = 1
    residual: bool = True
    shortcut: str = "projection"
    expansion: ClassVar[int] = 4

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.conv(self.features, (1, 1), 1, "VALID", name="conv1")(x)
        y = nn.relu(self.norm(name="norm1")(y))
        y = self.conv(self.features, (3, 3), self.strides, torch_padding(3), name="conv2")(y)
        y = nn.relu(self.norm(name="norm2")(y))
        y = self.conv(self.features * self.expansion, (1, 1), 1, "VALID", name="conv3")(y)
        y = self.norm(scale_init=last_norm_init(self.residual), name="norm3")(y)
        return nn.relu(add_shortcut(self, x, y))


def last_norm_init(residual: bool) -> Callable:
    return nn.initializers.zeros if residual else nn.initializers.ones


def add_shortcut(block: nn.Module, x: jax.Array, y: jax.Array) -> jax.Array:
    """`y` plus the block's shortcut of `x`, or `y` alone in a plain block.

    Called inside the block's compact method, so the projection's parameters belong to the block
    (`projection_conv`, `projection_norm`).
    """
    if not block.residual:
        return y
    if x.shape == y.shape:
        return x + y
    if block.shortcut == "projection":
        x = block.conv(y.shape[-1], (1, 1), block.strides, "VALID", name="projection_conv")(x)
        return block.norm(name="projection_norm")(x) + y
    if block.shortcut == "zero_pad":
        return zero_pad_shortcut(x, block.strides, y.shape[-1]) + y
    raise ValueError(f"unknown shortcut {block.shortcut!r}; known: {', '.join(SHORTCUTS)}")


def zero_pad_shortcut(x: jax.Array, strides: int, features: int) -> jax.Array:
    """Option A of He et al. 2016: subsample by `strides` and append zero channels (no parameters).

    Taking every `strides`-th pixel from the first one matches the positions a 3x3 convolution
    with padding 1 and the same stride is centred on.
    """
    x = x[:, ::strides, ::strides, :]
    extra = features - x.shape[-1]
    return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))


class Stage(nn.Module):
    """`num_blocks` blocks named block1, block2, ...; the first one carries the stride."""

    block_cls: ModuleDef
    num_blocks: int
    features: int
    strides: int
    block_options: dict

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for index in range(self.num_blocks):
            strides = self.strides if index == 0 else 1
            block = self.block_cls(
                self.features, strides=strides, name=f"block{index + 1}", **self.block_options
            )
            x = block(x)
        return x


class ResNet(nn.Module):
    """ResNet on NHWC input; returns logits (N, num_classes).

    `stem='imagenet'`: 7x7 stride-2 convolution, batch norm, ReLU, 3x3 stride-2 max pooling.
    `stem='cifar'`: 3x3 convolution, batch norm, ReLU. The stem has `stage_widths[0]` channels;
    stages are `stage1`, `stage2`, ... (the first keeps the resolution, the others halve it), and
    the classifier after global average pooling is `head`. The feature maps 'stem', 'stage1', ...
    and 'features' (the pooled vector) are sown (see `jaxconv.models.feature_maps`).
    `residual=False` gives the plain twin.
    """

    stage_sizes: Sequence[int]
    block_cls: ModuleDef
    num_classes: int = 1000
    stage_widths: Sequence[int] = (64, 128, 256, 512)
    stem: str = "imagenet"
    residual: bool = True
    shortcut: str = "projection"
    convolution: Convolution = lax.conv_general_dilated
    batch_norm_axis: str | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        if len(self.stage_widths) != len(self.stage_sizes):
            raise ValueError(
                f"stage_widths {tuple(self.stage_widths)} and stage_sizes "
                f"{tuple(self.stage_sizes)} must have the same length"
            )
        x = self.stem_layers(x, train)
        feature_maps = {"stem": x}
        conv = functools.partial(
            Conv,
            use_bias=False,
            kernel_init=he_normal,
            conv_general_dilated=self.convolution,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        norm = batch_norm(train, self.dtype, self.param_dtype, self.batch_norm_axis)
        options = dict(conv=conv, norm=norm, residual=self.residual, shortcut=self.shortcut)
        for index, (size, width) in enumerate(
            zip(self.stage_sizes, self.stage_widths, strict=True)
        ):
            name = f"stage{index + 1}"
            strides = 1 if index == 0 else 2
            x = Stage(self.block_cls, size, width, strides, options, name=name)(x)
            feature_maps[name] = x
        x = jnp.mean(x, axis=(1, 2))
        feature_maps["features"] = x
        self.sow("intermediates", "feature_maps", feature_maps)
        return nn.Dense(
            self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="head"
        )(x)

    def stem_layers(self, x: jax.Array, train: bool) -> jax.Array:
        layer = dict(
            convolution=self.convolution,
            batch_norm_axis=self.batch_norm_axis,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="stem",
        )
        width = self.stage_widths[0]
        if self.stem == "imagenet":
            x = ConvNormAct(width, 7, strides=2, padding=torch_padding(7), **layer)(x, train=train)
            return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        if self.stem == "cifar":
            return ConvNormAct(width, 3, padding=torch_padding(3), **layer)(x, train=train)
        raise ValueError(f"unknown stem {self.stem!r}; known: 'imagenet', 'cifar'")


def imagenet_resnet(stage_sizes: Sequence[int], block_cls: ModuleDef, residual: bool = True):
    return functools.partial(
        ResNet, stage_sizes=tuple(stage_sizes), block_cls=block_cls, residual=residual
    )


def cifar_resnet(depth: int, residual: bool = True):
    """ResNet of depth 6n + 2 for 32x32 input (He et al. 2016, Sec. 4.2), 10 classes by default."""
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2 (8, 20, 32, ..., 110), got {depth}")
    blocks = (depth - 2) // 6
    return functools.partial(
        ResNet,
        stage_sizes=(blocks, blocks, blocks),
        block_cls=BasicBlock,
        num_classes=10,
        stage_widths=(16, 32, 64),
        stem="cifar",
        residual=residual,
        shortcut="zero_pad",
    )


IMAGENET_STAGE_SIZES = {
    18: ((2, 2, 2, 2), BasicBlock),
    34: ((3, 4, 6, 3), BasicBlock),
    50: ((3, 4, 6, 3), Bottleneck),
    101: ((3, 4, 23, 3), Bottleneck),
    152: ((3, 8, 36, 3), Bottleneck),
}
# 8 (one block a stage) is not in the paper: the smallest of the family, for quick runs and tests.
CIFAR_DEPTHS = (8, 20, 32, 44, 56, 110)

ResNet18 = imagenet_resnet(*IMAGENET_STAGE_SIZES[18])
ResNet34 = imagenet_resnet(*IMAGENET_STAGE_SIZES[34])
ResNet50 = imagenet_resnet(*IMAGENET_STAGE_SIZES[50])
ResNet101 = imagenet_resnet(*IMAGENET_STAGE_SIZES[101])
ResNet152 = imagenet_resnet(*IMAGENET_STAGE_SIZES[152])
ResNet20 = cifar_resnet(20)
ResNet56 = cifar_resnet(56)


def registry() -> dict[str, Callable[..., nn.Module]]:
    """resnet18 ... resnet152, resnet20 ... resnet110 and their plain twins plain18 ... plain110."""
    entries = {}
    for depth, (stage_sizes, block_cls) in IMAGENET_STAGE_SIZES.items():
        entries[f"resnet{depth}"] = imagenet_resnet(stage_sizes, block_cls)
        entries[f"plain{depth}"] = imagenet_resnet(stage_sizes, block_cls, residual=False)
    for depth in CIFAR_DEPTHS:
        entries[f"resnet{depth}"] = cifar_resnet(depth)
        entries[f"plain{depth}"] = cifar_resnet(depth, residual=False)
    return entries
