"""Flax blocks shared by the models: the typical convolutional layer, conv-norm-act, up-sampling.

All blocks take and return NHWC arrays; kernels are HWIO (Flax's layout). Activations and pooling
are chosen by name so that configs, which hold plain strings, can select them.

What a block computes is in its fields. `convolution` is the function every convolution calls,
with `lax.conv_general_dilated`'s signature (the default; on CPU the training loop passes a
`jaxconv.cpu.fast_conv.PlannedConvolution`). `batch_norm_axis` names the mapped device axis
whose batch statistics batch norm averages over (the pmap strategy's; None under jit, where the
global batch is one array).
"""

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.cpu.gradients import add_bias, normalize_with_batch_statistics, tiled_max_pool

Array = jax.Array
Dtype = Any


Convolution = Callable[..., jax.Array]  # lax.conv_general_dilated's signature


class Conv(nn.Conv):
    """Flax's convolution: the same parameters (`kernel`, `bias`), initial values and outputs
    as `nn.Conv`, computed by its `conv_general_dilated` field (see the module docstring).

    The bias is added by `add_bias`, whose gradient is summed quickly over few channels.
    Flax's convolution without its bias runs in this module's scope (`nn.share_scope`), so
    the parameters keep their names and checkpoints and converted weights fit either.

    `max_pool=(window, strides)` max-pools the convolution before its bias is added (see
    `ConvLayer`, which uses it): a per-feature constant commutes with a maximum."""

    max_pool: tuple[int, int | None] | None = None

    @nn.compact
    def __call__(self, inputs: Array) -> Array:
        if not self.use_bias and self.max_pool is None:
            return super().__call__(inputs)
        unbiased = self.clone(use_bias=False, max_pool=None, parent=self, name="unbiased")
        nn.share_scope(self, unbiased)
        y = unbiased(inputs)
        if self.max_pool is not None:
            y = pool(y, "max", *self.max_pool)
        if not self.use_bias:
            return y
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        # y is in the dtype Flax promotes inputs, kernel and bias to (kernel and bias share one).
        return add_bias(y, bias.astype(y.dtype))


class ConvTranspose(nn.ConvTranspose):
    """Flax's transposed convolution, same parameters and outputs; the 2x2 stride-2 'VALID'
    case (U-Net's up-convolution) is computed as what it is, one matrix product per kernel tap
    and the four results interleaved (depth to space), where XLA:CPU would run a slow
    transposed convolution. One product per tap reads each (C, O) slab of the HWIO kernel
    where it lies, and its gradient is written there, with no transposed copy of the kernel."""

    @nn.compact
    def __call__(self, inputs: Array) -> Array:
        if not self._is_depth_to_space(inputs):
            return super().__call__(inputs)
        channels = inputs.shape[-1]
        kernel = self.param(
            "kernel", self.kernel_init, (2, 2, channels, self.features), self.param_dtype
        )
        bias = (
            self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias
            else None
        )
        inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        batch, height, width = inputs.shape[:3]
        pixels = inputs.reshape(-1, channels)
        # Output pixel (2i + a, 2j + b) is input pixel (i, j) times kernel tap (1 - a, 1 - b):
        # without transpose_kernel, a transposed convolution correlates with the flipped kernel.
        rows = []
        for a in range(2):
            taps = [
                jnp.dot(pixels, kernel[1 - a, 1 - b], precision=self.precision) for b in range(2)
            ]
            rows.append(jnp.stack(taps, axis=1).reshape(batch, height, 2 * width, -1))
        y = jnp.stack(rows, axis=2).reshape(batch, 2 * height, 2 * width, self.features)
        return y if bias is None else y + bias

    def _is_depth_to_space(self, inputs: Array) -> bool:
        dilation = self.kernel_dilation
        return (
            inputs.ndim == 4
            and tuple(self.kernel_size) == (2, 2)
            and tuple(self.strides or (1, 1)) == (2, 2)
            and self.padding == "VALID"
            and (dilation is None or tuple(dilation) == (1, 1))
            and not self.transpose_kernel
            and self.mask is None
        )


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": nn.sigmoid,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "identity": lambda x: x,
}
# Those a maximum commutes with: f(max(a, b)) == max(f(a), f(b)).
NON_DECREASING_ACTIVATIONS = ("relu", "tanh", "sigmoid", "identity")

POOLING_KINDS = ("max", "avg")


def activation_by_name(name: str) -> Callable[[Array], Array]:
    """The activation function called `name`; a ValueError lists the known names."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]


def pool(x: Array, kind: str | None, window: int, strides: int | None = None) -> Array:
    """Max or average pooling over H and W with a square window; `kind=None` returns `x`.

    Strides default to the window, so windows do not overlap (the subsampling of LeNet-5).
    Average pooling divides by the full window, as PyTorch's `AvgPool2d` does without padding.
    """
    if kind is None:
        return x
    if kind not in POOLING_KINDS:
        raise ValueError(f"unknown pooling {kind!r}; known: {', '.join(POOLING_KINDS)} or None")
    strides = window if strides is None else strides
    if kind == "max" and strides == window and x.ndim == 4:
        return tiled_max_pool(x, window)
    pool_fn = nn.max_pool if kind == "max" else nn.avg_pool
    return pool_fn(x, (window, window), strides=(strides, strides))


def adaptive_avg_pool(x: Array, output_size: tuple[int, int]) -> Array:
    """Average pooling of NHWC `x` to a fixed (H, W), with the bins of PyTorch's AdaptiveAvgPool2d.

    Output cell i along an axis of length L averages input rows floor(i * L / n) up to
    ceil((i + 1) * L / n) (exclusive), so bins may overlap or repeat when L is not a multiple of n,
    and an input smaller than the output is up-sampled by repetition. Matching PyTorch exactly
    keeps converted torchvision weights valid for inputs of any size.
    """
    for axis, size in ((1, output_size[0]), (2, output_size[1])):
        length = x.shape[axis]
        if length == size:
            continue
        bins = [
            jnp.mean(
                jax.lax.slice_in_dim(
                    x, (i * length) // size, -(-(i + 1) * length // size), axis=axis
                ),
                axis=axis,
                keepdims=True,
            )
            for i in range(size)
        ]
        x = jnp.concatenate(bins, axis=axis)
    return x


def flatten_channels_first(x: jax.Array) -> jax.Array:
    """Flatten NHWC to (N, C * H * W) in PyTorch's NCHW order."""
    return jnp.transpose(x, (0, 3, 1, 2)).reshape((x.shape[0], -1))


def check_input_size(size: tuple[int, int], minimum: int, model: str) -> None:
    """Raise a ValueError naming `model` when H or W is below `minimum`."""
    if min(size) < minimum:
        raise ValueError(
            f"{model} needs input of at least {minimum}x{minimum}, got {size[0]}x{size[1]}"
        )


class ConvLayer(nn.Module):
    """The typical convolutional layer: convolution with stride, a non-linearity, optional pooling.

    Parameters live under `conv/` (kernel HWIO, bias). `pooling` is None, 'max' or 'avg' with a
    `pool_size` window and non-overlapping strides unless `pool_strides` says otherwise.

    Max pooling commutes with the bias (a per-feature constant) and with an activation that
    never decreases, so where both hold it comes first: the bias and the activation, and their
    gradients, then see a quarter of the values (LeNet-5's 2x2 pools), and the pool's gradient
    is written straight into the convolution's. The values are the same, and so are the
    gradients, unless adding the bias rounds two entries of a window to a tie.
    """

    features: int
    kernel_size: int = 3
    strides: int = 1
    padding: str | int | tuple = "SAME"
    activation: str = "relu"
    pooling: str | None = None
    pool_size: int = 2
    pool_strides: int | None = None
    use_bias: bool = True
    convolution: Convolution = lax.conv_general_dilated
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        activation = activation_by_name(self.activation)
        pool_first = self.pooling == "max" and self.activation in NON_DECREASING_ACTIVATIONS
        x = Conv(
            self.features,
            (self.kernel_size, self.kernel_size),
            strides=self.strides,
            padding=self.padding,
            use_bias=self.use_bias,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            max_pool=(self.pool_size, self.pool_strides) if pool_first else None,
            conv_general_dilated=self.convolution,
            name="conv",
        )(x)
        if pool_first:
            return activation(x)
        return pool(activation(x), self.pooling, self.pool_size, self.pool_strides)


def torch_padding(kernel_size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Symmetric padding of kernel_size // 2 on H and W, as PyTorch's `padding=k // 2`.

    Flax's 'SAME' pads (0, 1) for a stride-2 3x3 convolution on even input where PyTorch pads
    (1, 1); the explicit form keeps outputs equal to torchvision's for converted weights.
    """
    half = kernel_size // 2
    return ((half, half), (half, half))


# He et al. 2015 ("Delving deep into rectifiers") initialisation, fan-out mode as in torchvision.
he_normal = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class ConvNormAct(nn.Module):
    """Convolution, optional batch norm, then an activation ('identity' for none).

    Parameters live under `conv/` and `norm/`. Batch norm uses PyTorch's defaults (momentum 0.1
    of the new batch, i.e. Flax momentum 0.9, and epsilon 1e-5) so converted statistics behave
    the same. `use_bias=None` means "a bias only when there is no batch norm", whose shift makes
    a bias redundant.
    """

    features: int
    kernel_size: int = 3
    strides: int = 1
    padding: str | int | tuple = "SAME"
    batch_norm: bool = True
    activation: str = "relu"
    use_bias: bool | None = None
    kernel_init: Callable = he_normal
    norm_scale_init: Callable = nn.initializers.ones
    convolution: Convolution = lax.conv_general_dilated
    batch_norm_axis: str | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, *, train: bool) -> Array:
        use_bias = not self.batch_norm if self.use_bias is None else self.use_bias
        x = Conv(
            self.features,
            (self.kernel_size, self.kernel_size),
            strides=self.strides,
            padding=self.padding,
            use_bias=use_bias,
            kernel_init=self.kernel_init,
            conv_general_dilated=self.convolution,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="conv",
        )(x)
        if self.batch_norm:
            norm = batch_norm(
                train, self.dtype, self.param_dtype, self.batch_norm_axis, self.norm_scale_init
            )
            x = norm(name="norm")(x)
        return activation_by_name(self.activation)(x)


def batch_norm(
    train: bool,
    dtype: Dtype,
    param_dtype: Dtype,
    axis_name: str | None = None,
    scale_init: Callable = nn.initializers.ones,
):
    """A BatchNorm factory (call it with `name=...`, `scale_init=...`) with PyTorch's momentum
    and epsilon, using batch statistics when training, averaged over the mapped device axis
    `axis_name` when given (cross-device "synchronised" batch norm)."""

    def make(name: str | None = None, scale_init: Callable = scale_init) -> BatchNorm:
        return BatchNorm(
            use_running_average=not train,
            axis_name=axis_name if train else None,
            momentum=0.9,
            epsilon=1e-5,
            scale_init=scale_init,
            dtype=dtype,
            param_dtype=param_dtype,
            name=name,
        )

    return make


class BatchNorm(nn.Module):
    """Batch norm over the last (feature) axis: Flax's `nn.BatchNorm` with its defaults, the
    same variables (params `scale`, `bias`; batch_stats `mean`, `var`, float32) and results, and
    a training-mode gradient written out (`normalize_with_batch_statistics`).

    Statistics are float32 whatever `dtype` is, the variance E[x^2] - E[x]^2 clipped at zero;
    the running statistics move by `1 - momentum` towards each batch's (not during `init`).
    With `axis_name` the statistics are those of the whole batch across that mapped axis."""

    use_running_average: bool = False
    axis_name: str | None = None
    momentum: float = 0.99
    epsilon: float = 1e-5
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32
    scale_init: Callable = nn.initializers.ones
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: Array) -> Array:
        features = (x.shape[-1],)
        running_mean = self.variable("batch_stats", "mean", jnp.zeros, features, jnp.float32)
        running_var = self.variable("batch_stats", "var", jnp.ones, features, jnp.float32)
        scale = self.param("scale", self.scale_init, features, self.param_dtype)
        bias = self.param("bias", self.bias_init, features, self.param_dtype)
        dtype = self.dtype or jnp.result_type(x, scale, bias)
        if self.use_running_average:
            multiplier = jax.lax.rsqrt(running_var.value + self.epsilon) * scale
            y = (x - running_mean.value) * multiplier + bias
            return y.astype(dtype)
        axis_name = None if self.is_initializing() else self.axis_name
        y, mean, var = normalize_with_batch_statistics(x, scale, bias, self.epsilon, axis_name)
        if not self.is_initializing():
            running_mean.value = self.momentum * running_mean.value + (1 - self.momentum) * mean
            running_var.value = self.momentum * running_var.value + (1 - self.momentum) * var
        return y.astype(dtype)


UPSAMPLING_METHODS = ("transpose", "bilinear")


class UpSample(nn.Module):
    """Double H and W and map to `features` channels.

    'transpose': a learned 2x2 transposed convolution with stride 2 (the "up-convolution" of
    Ronneberger et al. 2015). 'bilinear': bilinear interpolation (half-pixel centres, like
    PyTorch's `align_corners=False`) followed by a 3x3 'SAME' convolution, which avoids the
    checkerboard artefacts of transposed convolutions (Odena et al., Distill 2016).
    Parameters live under `conv/`.
    """

    features: int
    method: str = "transpose"
    use_bias: bool = True
    convolution: Convolution = lax.conv_general_dilated
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        layer = dict(use_bias=self.use_bias, dtype=self.dtype, param_dtype=self.param_dtype)
        if self.method == "transpose":
            return ConvTranspose(
                self.features, (2, 2), strides=(2, 2), padding="VALID", name="conv", **layer
            )(x)
        if self.method == "bilinear":
            batch, height, width, channels = x.shape
            x = jax.image.resize(x, (batch, 2 * height, 2 * width, channels), "bilinear")
            return Conv(
                self.features,
                (3, 3),
                padding="SAME",
                conv_general_dilated=self.convolution,
                name="conv",
                **layer,
            )(x)
        raise ValueError(
            f"unknown up-sampling {self.method!r}; known: {', '.join(UPSAMPLING_METHODS)}"
        )
