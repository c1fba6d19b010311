"""N-dimensional discrete convolution and correlation, with scipy's output modes.

    convolve(f, k)[i] = sum_j f[i - j] k[j]    (the kernel is flipped: a delta returns the kernel)
    correlate(f, k)[i] = sum_j f[i + j] k[j]   (no flip; complex kernels are conjugated)

The kernel acts on the trailing `k.ndim` axes of `f`; any leading axes of `f` are a batch, each
entry filtered alike. Index `i` runs over the output grid that `mode` selects:

- 'full': every shift at which kernel and input overlap, `n + m - 1` cells per axis.
- 'same': `n` cells, the part of 'full' centred as `scipy.signal.convolve` centres it: 'full'
  starting at cell `(m - 1) // 2` for `convolve` and at `m // 2` for `correlate`, for odd and even
  kernel sizes alike.
- 'valid': the `n - m + 1` cells where the kernel lies wholly inside the input. Where the kernel
  is the longer one along an axis, the roles swap as in scipy and the output holds the
  `m - n + 1` shifts at which the input lies wholly inside the kernel.

`padding` says what the input holds outside its bounds, with `numpy.pad`'s meanings ('zero',
'reflect', 'symmetric', 'edge', 'wrap'; see `ops.padding`): the input is extended by that rule
as far as the kernel reaches. So padding changes the border cells of 'same' and 'full' outputs
(in 'full' the outermost cells see only extended values), and never changes 'valid' outputs,
which by definition read no cell outside the input.

`stride` keeps every `stride`-th cell of the chosen output, starting with the first one:
`convolve(f, k, mode, stride=s) == convolve(f, k, mode)[::s]` along each axis, computed without
the skipped cells where the direct method is used.

`method` is 'direct' (a sum over kernel taps, or XLA's convolution), 'fft' (products of
spectra) or 'auto', which compares an operation count for both, like scipy's
`choose_conv_method`, and takes the cheaper. Both give the same result up to rounding.

Integer inputs are promoted to the default floating type. Everything is traceable:
`jax.jit` (with `mode`, `padding`, `stride` and `method` static) and `jax.grad` work through it.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv.ops import arguments
from jaxconv.ops.direct import correlate_direct, output_shape
from jaxconv.ops.fourier import correlate_fft, transform_lengths
from jaxconv.ops.padding import pad

METHODS = ("auto", "direct", "fft")

# Costs relative to one multiply-add of the sum of shifted copies, fitted to float32 1-D, 2-D
# and 3-D timings: an FFT butterfly (per point and per log2 of the length), one
# multiply-add of XLA's convolution (used for several channels: a matrix product inside, far
# faster per operation), and one complex multiply-add of the per-frequency channel sums. They put
# the crossover for one 512 x 512 image near a 13 x 13 kernel.
_FFT_POINT_COST = 2.5
_XLA_CONVOLUTION_COST = 0.15
_SPECTRAL_PRODUCT_COST = 8.0


def convolve(f, k, mode: str = "full", padding: str = "zero", stride=1, method: str = "auto"):
    """N-D convolution of `f` with the flipped kernel `k` over `f`'s trailing `k.ndim` axes.

    `f`: `(*batch, *spatial)`; `k`: `(*kernel_spatial)`, `k.ndim <= f.ndim`. Returns
    `(*batch, *out_spatial)`; see the module docstring for `mode`, `padding`, `stride`, `method`.
    """
    return _filter_single(f, k, mode, padding, stride, method, flip=True)


def correlate(f, k, mode: str = "full", padding: str = "zero", stride=1, method: str = "auto"):
    """N-D correlation (no flip) of `f` with `k`; same interface as `convolve`.

    As in `scipy.signal.correlate`, a complex `k` is conjugated, and in 'same' mode the kernel
    cell `m // 2` sits on the output cell.
    """
    return _filter_single(f, k, mode, padding, stride, method, flip=False)


def convolve_bank(
    inputs, kernels, mode: str = "full", padding: str = "zero", stride=1, method: str = "auto"
):
    """A bank of M kernels over C-channel inputs, as a ConvNet layer, with flipped kernels.

    `inputs`: `(*batch, *spatial, C)` (channels last, e.g. NHWC); `kernels`:
    `(M, *kernel_spatial, C)`. Returns `(*batch, *out_spatial, M)`, where feature map `q` is
    `sum_c convolve(inputs[..., c], kernels[q, ..., c])`. The number of spatial axes is
    `kernels.ndim - 2`; modes, padding, stride and method as in `convolve`.
    """
    return _filter_channels(inputs, kernels, mode, padding, stride, method, flip=True)


def correlate_bank(
    inputs, kernels, mode: str = "full", padding: str = "zero", stride=1, method: str = "auto"
):
    """`convolve_bank` without the flip: what ConvNet frameworks call a convolution layer."""
    return _filter_channels(inputs, kernels, mode, padding, stride, method, flip=False)


def choose_method(f, k, mode: str = "full", padding: str = "zero", stride=1) -> str:
    """'direct' or 'fft': the cheaper method for `convolve(f, k, mode, padding, stride)`.

    `f` and `k` may be arrays or anything with a `.shape` (e.g. `jax.ShapeDtypeStruct`).
    """
    f_shape, k_shape = tuple(np.shape(f)), tuple(np.shape(k))
    arguments.check_ranks(len(f_shape), len(k_shape))
    options = _checked_options(f_shape + (1,), (1,) + k_shape + (1,), mode, padding, stride, "auto")
    return _cheaper_method(
        f_shape + (1,),
        (1,) + k_shape + (1,),
        options["mode"],
        options["padding"],
        stride=options["stride"],
    )


def _filter_single(f, k, mode, padding, stride, method, *, flip):
    """One kernel, no channel axis: the compiled filter adds unit channel axes and removes them."""
    f, k = jnp.asarray(f), jnp.asarray(k)
    arguments.check_ranks(f.ndim, k.ndim)
    options = _checked_options(f.shape + (1,), (1,) + k.shape + (1,), mode, padding, stride, method)
    return _filter(f, k, **options, flip=flip, single=True)


def _filter_channels(inputs, kernels, mode, padding, stride, method, *, flip):
    inputs, kernels = jnp.asarray(inputs), jnp.asarray(kernels)
    if kernels.ndim < 2:
        raise ValueError(
            f"a kernel bank has shape (M, *kernel_spatial, C), got shape {kernels.shape}: "
            f"add the feature and channel axes"
        )
    arguments.check_ranks(inputs.ndim, kernels.ndim - 1, "kernel bank")
    if inputs.shape[-1] != kernels.shape[-1]:
        raise ValueError(
            f"the input has {inputs.shape[-1]} channels on its last axis but the kernels "
            f"{kernels.shape[-1]}: give both the same channel count, channels last"
        )
    options = _checked_options(inputs.shape, kernels.shape, mode, padding, stride, method)
    return _filter(inputs, kernels, **options, flip=flip, single=False)


def _checked_options(input_shape, kernel_shape, mode, padding, stride, method) -> dict:
    """Checks the options at the boundary, before anything is traced; strides become a tuple."""
    arguments.check_not_empty(input_shape, "input")
    arguments.check_not_empty(kernel_shape, "kernel")
    arguments.check_choice(mode, arguments.MODES, "mode")
    arguments.check_padding(padding)
    arguments.check_choice(method, METHODS, "method")
    stride = arguments.per_axis(stride, len(kernel_shape) - 2, "stride", minimum=1)
    # 'valid' reads no extended cell; zeros only serve the swapped roles of a longer kernel.
    padding = "zero" if mode == "valid" else padding
    return {"mode": mode, "padding": padding, "stride": stride, "method": method}


@functools.partial(
    jax.jit, static_argnames=("mode", "padding", "stride", "method", "flip", "single")
)
def _filter(inputs, kernels, *, mode, padding, stride, method, flip, single):
    """Correlation of checked arguments: flip (convolution) or conjugate (correlation), extend,
    run. `single`: `inputs` (*batch, *spatial) and one kernel, without channel axes."""
    if single:
        inputs, kernels = inputs[..., None], kernels[None, ..., None]
    dtype = jnp.result_type(inputs, kernels)
    if not jnp.issubdtype(dtype, jnp.inexact):
        dtype = jnp.result_type(float)
    # Half-precision floats are summed in float32 (the FFT has no half-precision form), and the
    # result is given back in the input's precision.
    compute_dtype = jnp.promote_types(dtype, jnp.float32)
    inputs, kernels = inputs.astype(compute_dtype), kernels.astype(compute_dtype)
    # convolve(f, k) is correlate(f, flipped k) in every mode, which is how scipy defines it too.
    spatial_axes = tuple(range(1, kernels.ndim - 1))
    kernels = jnp.flip(kernels, spatial_axes) if flip else jnp.conj(kernels)

    if method == "auto":
        method = _cheaper_method(inputs.shape, kernels.shape, mode, padding, stride)
    if kernels.ndim == 2:  # a 0-d kernel has no axis to transform: the filter is a product
        method = "direct"
    widths = _correlation_widths(inputs.shape, kernels.shape, mode)
    if method == "fft" and padding == "zero":
        # The transform's own zero fill supplies the zeros: no padded copy of the input.
        run = functools.partial(correlate_fft, widths=widths)
    else:
        inputs = pad(inputs, widths + ((0, 0),), padding)
        run = correlate_fft if method == "fft" else correlate_direct
    out = _over_complex_parts(run, inputs, kernels, stride).astype(dtype)
    return out[..., 0] if single else out


def _correlation_widths(input_shape, kernel_shape, mode):
    """(before, after) extension per spatial axis so that a valid correlation yields `mode`'s
    grid. Shapes are channels-last inputs and (M, *kernel_spatial, C) kernels."""
    kernel_spatial = kernel_shape[1:-1]
    spatial_shape = input_shape[len(input_shape) - len(kernel_spatial) - 1 : -1]
    widths = []
    for size, width in zip(spatial_shape, kernel_spatial, strict=True):
        if mode == "full":
            widths.append((width - 1, width - 1))
        elif mode == "same":
            widths.append((width // 2, width - 1 - width // 2))
        else:  # valid: nothing, or the m - n + 1 shifts of an input inside a longer kernel
            swap = max(width - size, 0)
            widths.append((swap, swap))
    return tuple(widths)


def _cheaper_method(input_shape, kernel_shape, mode, padding, stride) -> str:
    """Compares operation counts of both methods, weighted by their measured speeds."""
    features, kernel_spatial, channels = kernel_shape[0], kernel_shape[1:-1], kernel_shape[-1]
    num_batch = len(input_shape) - len(kernel_spatial) - 1
    batch_size = math.prod(input_shape[:num_batch])
    spatial_shape = input_shape[num_batch:-1]
    widths = _correlation_widths(input_shape, kernel_shape, mode)
    extended = tuple(size + before + after for size, (before, after) in zip(spatial_shape, widths))

    out_cells = math.prod(output_shape(extended, kernel_spatial, stride))
    direct = batch_size * out_cells * math.prod(kernel_spatial) * channels * features
    if channels > 1:
        direct *= _XLA_CONVOLUTION_COST
    if padding == "zero":
        lengths = transform_lengths(spatial_shape, kernel_spatial, widths)
    else:
        lengths = transform_lengths(extended, kernel_spatial, ((0, 0),) * len(extended))
    length = math.prod(lengths)
    transforms = batch_size * channels + features * channels + batch_size * features
    fft = _FFT_POINT_COST * transforms * length * math.log2(max(length, 2))
    fft += _SPECTRAL_PRODUCT_COST * batch_size * channels * features * length
    return "fft" if fft < direct else "direct"


def _over_complex_parts(algorithm, inputs, kernels, stride):
    """Runs a real algorithm on the real and imaginary parts: (a + ib)(c + id) by linearity."""
    total = None
    for input_part, input_factor in _parts(inputs):
        for kernel_part, kernel_factor in _parts(kernels):
            term = algorithm(input_part, kernel_part, stride)
            factor = input_factor * kernel_factor
            term = term if factor == 1 else factor * term
            total = term if total is None else total + term
    return total


def _parts(array):
    if jnp.iscomplexobj(array):
        return ((array.real, 1), (array.imag, 1j))
    return ((array, 1),)
