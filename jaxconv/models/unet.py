"""U-Net (Ronneberger, Fischer and Brox, "U-Net: convolutional networks for biomedical image
segmentation", MICCAI 2015).

Each level holds two 3x3 convolutions with ReLU; the encoder halves the resolution with 2x2 max
pooling and doubles the channels (64-128-256-512, then 1024 at the bottom); the decoder doubles the
resolution with a 2x2 up-convolution that halves the channels, concatenates the encoder's feature
map of the same level (centre-cropped when the convolutions are valid), and applies two 3x3
convolutions; a 1x1 convolution gives per-pixel logits.

`unet` is the original: valid convolutions with biases, no batch norm, 572x572 -> 388x388, and
31,030,658 parameters for 1 input channel and 2 classes. Every max pooling must see an even size
(the paper's rule for choosing the tile size), so valid inputs are 16k + 60 pixels with k >= 8
at depth 4 (188, 204, ..., 572, ...).

`unet_same` pads every 3x3 convolution ('SAME'), so the output has the input's height and width,
which must then be divisible by 2 ** depth. It uses batch norm by default (convolutions then have
no bias, batch norm's shift replaces it), as most modern U-Nets do.

Depth (the number of poolings), width (the first level's channels, doubled at each level down),
batch norm and up-sampling ('transpose', or 'bilinear' interpolation followed by a 3x3
convolution) are fields of both.

Deep supervision (`auxiliary_heads=k`, 'SAME' padding only): the k coarsest decoder levels each
get a 1x1 head of their own (`auxiliary1` ... `auxiliary{k}`), whose logits, repeated up to the
output's resolution, are sown into the `auxiliary_outputs` collection; training adds their loss
to the output's (jaxconv.train.step), so the deep levels, where a region's class is decided, get
a gradient of their own instead of only the one that reaches them through the finer levels
(Lee et al., "Deeply-supervised nets", 2015; for U-Nets, Zhou et al., "UNet++", 2018).
Evaluation and inference use the output alone.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.layers import Conv, ConvNormAct, Convolution, Dtype, UpSample, pool


class UNet(nn.Module):
    """U-Net on NHWC input; returns per-pixel logits (N, H', W', num_classes).

    Submodules: `encoder1` ... `encoder{depth}` and `bottom` (each with `conv1`, `conv2`),
    `decoder1` ... `decoder{depth}` from the deepest level up (each with `up`, `conv1`, `conv2`),
    and `head`. The levels' outputs are sown under the same names (see
    `jaxconv.models.feature_maps`).
    """

    num_classes: int = 2
    depth: int = 4
    width: int = 64
    padding: str = "VALID"
    batch_norm: bool = False
    upsampling: str = "transpose"
    auxiliary_heads: int = 0
    convolution: Convolution = lax.conv_general_dilated
    batch_norm_axis: str | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_unet_input(x.shape[1:3], self.depth, self.padding)
        check_auxiliary_heads(self.auxiliary_heads, self.depth, self.padding)
        options = dict(
            padding=self.padding,
            batch_norm=self.batch_norm,
            convolution=self.convolution,
            batch_norm_axis=self.batch_norm_axis,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        skips, feature_maps = [], {}
        for index in range(self.depth):
            name = f"encoder{index + 1}"
            x = DoubleConv(self.width * 2**index, name=name, **options)(x, train=train)
            feature_maps[name] = x
            skips.append(x)
            x = pool(x, "max", 2)
        x = DoubleConv(self.width * 2**self.depth, name="bottom", **options)(x, train=train)
        feature_maps["bottom"] = x
        for index, skip in enumerate(reversed(skips)):
            name = f"decoder{index + 1}"
            decoder = DecoderLevel(skip.shape[-1], upsampling=self.upsampling, name=name, **options)
            x = decoder(x, skip, train=train)
            feature_maps[name] = x
            if index < self.auxiliary_heads:
                self.sow("auxiliary_outputs", "logits", self._auxiliary_logits(x, index))
        self.sow("intermediates", "feature_maps", feature_maps)
        return self._head(x, "head")

    def _auxiliary_logits(self, x: jax.Array, index: int) -> jax.Array:
        """Decoder level `index + 1`'s own per-pixel logits, each repeated over the block of
        output pixels it covers (so the task's loss reads them as it reads the output)."""
        logits = self._head(x, f"auxiliary{index + 1}")
        factor = 2 ** (self.depth - 1 - index)
        return jnp.repeat(jnp.repeat(logits, factor, axis=1), factor, axis=2)

    def _head(self, x: jax.Array, name: str) -> jax.Array:
        """Per-pixel logits: a 1x1 convolution to `num_classes`."""
        return Conv(
            self.num_classes,
            (1, 1),
            conv_general_dilated=self.convolution,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name=name,
        )(x)


def check_auxiliary_heads(count: int, depth: int, padding: str) -> None:
    """Raise a ValueError unless `count` decoder levels can carry an auxiliary head."""
    if not 0 <= count < depth:
        raise ValueError(
            f"auxiliary_heads={count}: a U-Net of depth {depth} has {depth - 1} decoder "
            f"level(s) coarser than its output; use 0 to {depth - 1}."
        )
    if count and padding.upper() != "SAME":
        raise ValueError(
            f"auxiliary_heads={count} needs padding 'SAME' (a 'VALID' U-Net's levels are not "
            "whole multiples of its output); use unet_same or auxiliary_heads=0."
        )


class DoubleConv(nn.Module):
    """Two 3x3 convolutions `conv1`, `conv2`, each followed by (batch norm and) ReLU."""

    features: int
    padding: str
    batch_norm: bool
    convolution: Convolution
    batch_norm_axis: str | None
    dtype: Dtype
    param_dtype: Dtype

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        return double_conv(self, x, train)


class DecoderLevel(nn.Module):
    """Up-sample (`up`), concatenate the cropped encoder map, then `conv1`, `conv2`."""

    features: int
    padding: str
    batch_norm: bool
    convolution: Convolution
    batch_norm_axis: str | None
    dtype: Dtype
    param_dtype: Dtype
    upsampling: str = "transpose"

    @nn.compact
    def __call__(self, x: jax.Array, skip: jax.Array, *, train: bool) -> jax.Array:
        x = UpSample(
            self.features,
            self.upsampling,
            convolution=self.convolution,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="up",
        )(x)
        # The encoder's map first, as in the paper's Fig. 1 and the common implementations.
        x = jnp.concatenate([center_crop(skip, x.shape[1:3]), x], axis=-1)
        return double_conv(self, x, train)


def double_conv(level: nn.Module, x: jax.Array, train: bool) -> jax.Array:
    """Two 3x3 convolutions `conv1`, `conv2` (with batch norm) and ReLU, children of `level`."""
    layer = dict(
        padding=level.padding,
        batch_norm=level.batch_norm,
        convolution=level.convolution,
        batch_norm_axis=level.batch_norm_axis,
        dtype=level.dtype,
        param_dtype=level.param_dtype,
    )
    for index in range(2):
        x = ConvNormAct(level.features, 3, name=f"conv{index + 1}", **layer)(x, train=train)
    return x


def center_crop(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """The central `size` window of NHWC `x` (the paper's crop of the encoder's feature map)."""
    top = (x.shape[1] - size[0]) // 2
    left = (x.shape[2] - size[1]) // 2
    return x[:, top : top + size[0], left : left + size[1], :]


def output_size(size: int, depth: int, padding: str) -> int | None:
    """Output length of a U-Net along one axis of input length `size`, or None if invalid.

    Invalid means a max pooling would see an odd length (its last row would be dropped and the
    decoder could not crop the encoder's map symmetrically) or a map would vanish.
    """
    shrink = 4 if padding.upper() == "VALID" else 0
    for _ in range(depth):
        size -= shrink
        if size < 2 or size % 2:
            return None
        size //= 2
    size -= shrink
    for _ in range(depth):
        size = 2 * size - shrink
        if size < 1:
            return None
    return size if size >= 1 else None


def nearest_valid_sizes(size: int, depth: int, padding: str) -> tuple[int | None, int]:
    """The largest valid input length below `size` (None if none) and the smallest above it."""
    below = next((s for s in range(size - 1, 0, -1) if output_size(s, depth, padding)), None)
    above = next(
        s for s in range(size + 1, size + 2 ** (depth + 8)) if output_size(s, depth, padding)
    )
    return below, above


def check_unet_input(spatial: tuple[int, int], depth: int, padding: str) -> None:
    """Raise a ValueError naming the nearest valid sizes when H or W cannot pass through."""
    for axis, size in zip(("height", "width"), spatial, strict=True):
        if output_size(size, depth, padding) is not None:
            continue
        below, above = nearest_valid_sizes(size, depth, padding)
        rule = (
            f"a multiple of 2**depth = {2**depth}"
            if padding.upper() == "SAME"
            else "one whose every max pooling sees an even size"
        )
        nearest = f"{below} or {above}" if below else f"{above}"
        raise ValueError(
            f"U-Net (depth {depth}, padding {padding!r}) cannot take input {axis} {size}: it "
            f"must be {rule}; nearest valid: {nearest}"
        )


def registry() -> dict[str, functools.partial]:
    """unet (the original, valid padding) and unet_same ('SAME' padding, batch norm)."""
    return {
        "unet": functools.partial(UNet, padding="VALID", batch_norm=False),
        "unet_same": functools.partial(UNet, padding="SAME", batch_norm=True),
    }
