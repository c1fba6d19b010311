"""The trainable 2-D convolution, with forward and backward formulations chosen per shape.

`PlannedConvolution` takes the arguments of `jax.lax.conv_general_dilated` and is what a model's
`convolution` field holds once the training loop has planned it on the CPU
(jaxconv.cpu.planning; on GPU and TPU XLA's convolution, cuDNN's there, is already fast). A
planned 2-D NHWC x HWIO convolution carries a `jax.custom_vjp` whose forward pass, input
gradient and kernel gradient are each computed by the formulation its `Plan` names
(`FORMULATIONS`): XLA's own; im2col, per-tap products, col2im and the swapped-role kernel
gradient (matrix products over shifted windows); Winograd's F(2x2, 3x3) and F(4x4, 3x3)
(Lavin and Gray, 2016); and oneDNN's primitives, through jaxlib's custom call
(jaxconv.cpu.onednn) or its own library (jaxconv.cpu.dnnl). docs/cpu_speed.md describes each.

All formulations compute the same sums as `lax.conv_general_dilated` in a different order, so
results agree to float rounding (tests/cpu/test_fast_conv.py checks them against `jax.grad` of
it). Layout: inputs NHWC, kernels HWIO; like XLA's convolution this is a correlation (the kernel
is not flipped: a delta input returns the kernel, reversed in H and W).
"""

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv.cpu import dnnl, onednn

Pairs = tuple[tuple[int, int], tuple[int, int]]
NHWC_SPEC = lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))
FORMULATIONS = {
    "forward": ("xla", "im2col", "taps", "winograd", "winograd4", "onednn", "onednn_winograd"),
    "input_grad": (
        "xla",
        "im2col",
        "col2im",
        "winograd",
        "winograd4",
        "onednn",
        "onednn_library",
        "onednn_winograd",
    ),
    "kernel_grad": (
        "xla",
        "im2col",
        "taps",
        "swapped",
        "winograd",
        "winograd4",
        "onednn",
        "onednn_winograd",
    ),
}
# Raised whenever a formulation changes how it computes (and so how fast it is): plan files
# hold choices made from the old timings, and jaxconv.cpu.planning measures again rather
# than keep them. 2: oneDNN's input gradient reads the kernel's feature axes exchanged in place;
# oneDNN's kernel gradient. 3: oneDNN's library reads and writes the program's buffers in place
# (jaxconv.cpu.dnnl), no longer copying its operands. 4: Winograd's kernel transform as one
# matrix product; Winograd F(4x4, 3x3). 5: Winograd's input gradient and col2im's product read
# the kernel in place, no longer copying it transposed. 6: oneDNN's input gradient turns the
# images rather than a kernel that outweighs them. 7: oneDNN 2.6 (its Winograd kernels), each
# primitive with a scratchpad of its own. 8: oneDNN's backward-data primitive at stride 1.
# 9: Winograd's output transform as one matrix product.
REVISION = 9


@dataclasses.dataclass(frozen=True)
class Geometry:
    """The static description of one 2-D NHWC x HWIO convolution."""

    input_shape: tuple[int, int, int, int]  # N, H, W, C
    kernel_shape: tuple[int, int, int, int]  # KH, KW, C, O
    strides: tuple[int, int]
    padding: Pairs
    dilation: tuple[int, int]

    @property
    def output_size(self) -> tuple[int, int]:
        _, height, width, _ = self.input_shape
        sizes = []
        for length, kernel, stride, (low, high), dilation in zip(
            (height, width), self.kernel_shape[:2], self.strides, self.padding, self.dilation
        ):
            sizes.append((length + low + high - dilation * (kernel - 1) - 1) // stride + 1)
        return tuple(sizes)

    @property
    def flops(self) -> int:
        """Multiply-adds of the forward pass, two FLOPs each."""
        kernel_height, kernel_width, channels, features = self.kernel_shape
        out_height, out_width = self.output_size
        taps = kernel_height * kernel_width
        return 2 * self.input_shape[0] * out_height * out_width * taps * channels * features

    @property
    def key(self) -> str:
        """A stable text form, for plan files: 'n,h,w,c|kh,kw,c,o|s|p|d'."""
        join = lambda values: ",".join(str(v) for v in values)  # noqa: E731
        padding = join(value for pair in self.padding for value in pair)
        return "|".join(
            (
                join(self.input_shape),
                join(self.kernel_shape),
                join(self.strides),
                padding,
                join(self.dilation),
            )
        )


@dataclasses.dataclass(frozen=True)
class Plan:
    """Which formulation computes each of the three products (see the module docstring)."""

    forward: str = "xla"
    input_grad: str = "xla"
    kernel_grad: str = "xla"

    def __post_init__(self):
        for role, formulations in FORMULATIONS.items():
            if getattr(self, role) not in formulations:
                raise ValueError(
                    f"unknown {role} formulation {getattr(self, role)!r}; "
                    f"known: {', '.join(formulations)}"
                )


XLA_PLAN = Plan()


def candidates(
    geometry: Geometry, dtype: str = "float32", partitioned: bool = False
) -> dict[str, tuple[str, ...]]:
    """The formulations that can compute each product of `geometry` in `dtype` (a name).

    `partitioned`: in a program that XLA partitions over several devices (jit over a mesh),
    oneDNN's calls are not offered: they are opaque to XLA's partitioner, which would run each
    on one device with every device's batch gathered there."""
    excluded = {role: set() for role in FORMULATIONS}
    if partitioned:
        for role in excluded:
            excluded[role].add("onednn")
    if not winograd_applies(geometry):
        for role in excluded:
            excluded[role].update(WINOGRAD)
    if dtype != "float32":
        # F(4x4, 3x3)'s transforms scale by up to 8 and 1/24: in bfloat16's 8 bits of
        # mantissa its error would reach the percents (and its products, like every
        # formulation's, accumulate in float32, which float64 would lose).
        for role in excluded:
            excluded[role].add("winograd4")
    if geometry.strides != (1, 1):  # im2col of the transposed convolution needs stride 1
        excluded["input_grad"].add("im2col")
    if dtype not in onednn.DTYPES or not onednn.available():
        excluded["forward"].add("onednn")
    if _onednn_input_grad_route(geometry, dtype) is None:
        excluded["input_grad"].add("onednn")
    if not _library_applies(geometry, dtype):
        excluded["kernel_grad"].add("onednn")
    if partitioned or not _library_winograd_applies(geometry, dtype):
        for role in excluded:
            excluded[role].add("onednn_winograd")
    if partitioned or _onednn_input_grad_route(geometry, dtype) != "jaxlib":
        # Where 'onednn' already is the library's primitive (other strides), or there is none.
        excluded["input_grad"].add("onednn_library")
    return {
        role: tuple(name for name in names if name not in excluded[role])
        for role, names in FORMULATIONS.items()
    }


def check_plan(
    plan: Plan, geometry: Geometry, dtype: str = "float32", partitioned: bool = False
) -> None:
    """Refuses a plan (from an edited or foreign plan file, say) naming a formulation that
    cannot compute this shape, rather than computing something else."""
    options = candidates(geometry, dtype, partitioned)
    for role in FORMULATIONS:
        if getattr(plan, role) not in options[role]:
            raise ValueError(
                f"the convolution plan for {geometry.key} ({dtype}) computes the {role} by "
                f"{getattr(plan, role)!r}, which cannot compute that shape here (it can: "
                f"{', '.join(options[role])}); delete the plan file to measure again."
            )


def winograd_applies(geometry: Geometry) -> bool:
    return (
        geometry.kernel_shape[:2] == (3, 3)
        and geometry.strides == (1, 1)
        and geometry.dilation == (1, 1)
    )


# --- Formulations ----------------------------------------------------------------------------


def _pad_spatial(x: jax.Array, padding: Pairs) -> jax.Array:
    zero = jnp.zeros((), x.dtype)
    return lax.pad(x, zero, ((0, 0, 0), (*padding[0], 0), (*padding[1], 0), (0, 0, 0)))


def _taps(x: jax.Array, geometry: Geometry) -> list[jax.Array]:
    """The KH * KW shifted, strided windows of the padded input, row-major over the kernel,
    each (N, Ho, Wo, C): tap (i, j) holds the input pixels kernel cell (i, j) multiplies."""
    padded = _pad_spatial(x, geometry.padding)
    batch, _, _, channels = x.shape
    out_height, out_width = geometry.output_size
    (stride_h, stride_w), (dilation_h, dilation_w) = geometry.strides, geometry.dilation
    taps = []
    for i in range(geometry.kernel_shape[0]):
        for j in range(geometry.kernel_shape[1]):
            top, left = i * dilation_h, j * dilation_w
            end = (
                batch,
                top + (out_height - 1) * stride_h + 1,
                left + (out_width - 1) * stride_w + 1,
                channels,
            )
            taps.append(lax.slice(padded, (0, top, left, 0), end, (1, stride_h, stride_w, 1)))
    return taps


def _patches(x: jax.Array, geometry: Geometry) -> jax.Array:
    """im2col: (N, Ho, Wo, KH * KW * C), channels ordered (kh, kw, c) as an HWIO kernel."""
    taps = _taps(x, geometry)
    return taps[0] if len(taps) == 1 else jnp.concatenate(taps, axis=-1)


def _matmul(a: jax.Array, b: jax.Array, contract: tuple[Sequence[int], Sequence[int]]):
    """`dot_general` accumulating in float32 (bf16 inputs too), returned in `a`'s dtype."""
    out = lax.dot_general(a, b, (contract, ((), ())), preferred_element_type=jnp.float32)
    return out.astype(a.dtype)


def _xla_forward(x, w, geometry: Geometry):
    return lax.conv_general_dilated(
        x,
        w,
        geometry.strides,
        geometry.padding,
        rhs_dilation=geometry.dilation,
        dimension_numbers=NHWC_SPEC,
    )


def forward_onednn(x, w, geometry: Geometry) -> jax.Array:
    return onednn.convolution(
        x, w, NHWC_SPEC, geometry.strides, geometry.padding, geometry.dilation
    )


def forward_im2col(x, w, geometry: Geometry) -> jax.Array:
    features = w.shape[-1]
    return _matmul(_patches(x, geometry), w.reshape(-1, features), ((3,), (0,)))


def forward_taps(x, w, geometry: Geometry) -> jax.Array:
    taps = _taps(x, geometry)
    kernel = w.reshape(len(taps), *w.shape[2:])
    products = [_matmul(tap, kernel[index], ((3,), (0,))) for index, tap in enumerate(taps)]
    return functools.reduce(jnp.add, products)


def kernel_grad_im2col(x, dy, geometry: Geometry, patches=None) -> jax.Array:
    patches = _patches(x, geometry) if patches is None else patches
    grad = _matmul(patches, dy, ((0, 1, 2), (0, 1, 2)))
    return grad.reshape(geometry.kernel_shape)


def kernel_grad_taps(x, dy, geometry: Geometry) -> jax.Array:
    grads = [_matmul(tap, dy, ((0, 1, 2), (0, 1, 2))) for tap in _taps(x, geometry)]
    return jnp.stack(grads).reshape(geometry.kernel_shape)


def kernel_grad_swapped(x, dy, geometry: Geometry) -> jax.Array:
    """The kernel gradient as XLA's forward convolution with the roles swapped: the input's
    channels as the batch, its images as the features, and the output gradient as an
    Ho x Wo kernel (dilated by the stride), sliding with the dilation as its stride. The
    result, (C, KH, KW, O), is the gradient with the channel axis first."""
    kernel_height, kernel_width = geometry.kernel_shape[:2]
    out_height, out_width = geometry.output_size
    (stride_h, stride_w), (dilation_h, dilation_w) = geometry.strides, geometry.dilation
    _, height, width, _ = geometry.input_shape
    # Cut the padded input to the rows and columns some output reads (negative high padding).
    (low_h, _), (low_w, _) = geometry.padding
    used_h = dilation_h * (kernel_height - 1) + stride_h * (out_height - 1) + 1
    used_w = dilation_w * (kernel_width - 1) + stride_w * (out_width - 1) + 1
    padding = ((low_h, used_h - height - low_h), (low_w, used_w - width - low_w))
    grad = lax.conv_general_dilated(
        _pad_spatial(x, padding),
        dy,
        window_strides=(dilation_h, dilation_w),
        padding="VALID",
        rhs_dilation=(stride_h, stride_w),
        dimension_numbers=("CHWN", "IHWO", "NHWC"),
        preferred_element_type=jnp.float32,
    )
    return jnp.transpose(grad, (1, 2, 0, 3)).astype(x.dtype)


def input_grad_col2im(dy, w, geometry: Geometry) -> jax.Array:
    """Each output pixel's gradient spread over its window: one product with every tap of the
    kernel, then each tap's slab added back where that tap read the padded input."""
    kernel_height, kernel_width, channels, features = geometry.kernel_shape
    # As one 2-D product (N Ho Wo, O) x (KH KW C, O)^T: over the 4-D operands XLA copies the
    # kernel transposed first.
    slabs = _matmul(dy.reshape(-1, features), w.reshape(-1, features), ((1,), (1,)))
    slabs = slabs.reshape(*dy.shape[:3], kernel_height, kernel_width, channels)
    _, height, width, _ = geometry.input_shape
    (low_h, high_h), (low_w, high_w) = geometry.padding
    padded_height, padded_width = height + low_h + high_h, width + low_w + high_w
    out_height, out_width = geometry.output_size
    (stride_h, stride_w), (dilation_h, dilation_w) = geometry.strides, geometry.dilation
    zero = jnp.zeros((), dy.dtype)
    total = None
    for i in range(kernel_height):
        for j in range(kernel_width):
            top, left = i * dilation_h, j * dilation_w
            bottom = padded_height - top - (out_height - 1) * stride_h - 1
            right = padded_width - left - (out_width - 1) * stride_w - 1
            placed = lax.pad(
                slabs[:, :, :, i, j, :],
                zero,
                ((0, 0, 0), (top, bottom, stride_h - 1), (left, right, stride_w - 1), (0, 0, 0)),
            )
            total = placed if total is None else total + placed
    return lax.slice(
        total, (0, low_h, low_w, 0), (total.shape[0], low_h + height, low_w + width, channels)
    )


def _transposed_geometry(geometry: Geometry) -> Geometry:
    """The stride-1 convolution of the output gradient with the flipped, I/O-swapped kernel
    that gives the input gradient."""
    kernel_height, kernel_width, channels, features = geometry.kernel_shape
    batch, height, width, _ = geometry.input_shape
    out_height, out_width = geometry.output_size
    padding = []
    for kernel, dilation, (low, _), length, out_length in zip(
        (kernel_height, kernel_width),
        geometry.dilation,
        geometry.padding,
        (height, width),
        (out_height, out_width),
    ):
        reach = dilation * (kernel - 1)
        padding.append((reach - low, length - out_length + low))
    return Geometry(
        (batch, out_height, out_width, features),
        (kernel_height, kernel_width, features, channels),
        (1, 1),
        tuple(padding),
        geometry.dilation,
    )


def _flipped_kernel(w: jax.Array) -> jax.Array:
    return jnp.swapaxes(w[::-1, ::-1], 2, 3)


def input_grad_im2col(dy, w, geometry: Geometry) -> jax.Array:
    """Stride 1 only: the full correlation of the output gradient with the flipped kernel."""
    return forward_im2col(dy, _flipped_kernel(w), _transposed_geometry(geometry))


def onednn_routes(
    geometry: Geometry, dtype: str = "float32", partitioned: bool = False
) -> dict[str, str | None]:
    """How oneDNN would compute each product of `geometry`: 'jaxlib' (jaxlib's call, inside
    the compiled program), 'library' (oneDNN's library, a host call), or None (it cannot)."""
    offered = candidates(geometry, dtype, partitioned)
    routes = {
        "forward": "jaxlib",
        "input_grad": _onednn_input_grad_route(geometry, dtype),
        "kernel_grad": "library",
    }
    return {role: routes[role] if "onednn" in offered[role] else None for role in FORMULATIONS}


def _library_applies(geometry: Geometry, dtype: str) -> bool:
    """Whether oneDNN's library (jaxconv.cpu.dnnl) computes this shape's gradients here."""
    non_negative = all(low >= 0 and high >= 0 for low, high in geometry.padding)
    return dtype in dnnl.DTYPES and non_negative and dnnl.available()


def _library_winograd_applies(geometry: Geometry, dtype: str) -> bool:
    """Whether oneDNN's library computes this shape's products by Winograd's F(4x4, 3x3)."""
    if not (winograd_applies(geometry) and _library_applies(geometry, dtype)):
        return False
    return dnnl.winograd_applies(
        geometry.input_shape,
        geometry.kernel_shape,
        geometry.strides,
        geometry.padding,
        geometry.dilation,
    )


def _onednn_input_grad_route(geometry: Geometry, dtype: str) -> str | None:
    """How oneDNN computes this input gradient: 'jaxlib' (the forward call on the transposed
    convolution, inside the program) at stride 1 where the padding is no wider than the
    kernel's reach; else 'library' (the backward-data primitive, a host call); else None."""
    reach_covers = all(
        low >= 0 and high >= 0 for low, high in _transposed_geometry(geometry).padding
    )
    if geometry.strides == (1, 1) and reach_covers and dtype in onednn.DTYPES:
        if onednn.available():
            return "jaxlib"
    return "library" if _library_applies(geometry, dtype) else None


# The kernel as the transposed convolution reads it, (KH, KW, C, O) read as HWOI: oneDNN takes
# the exchanged feature axes from the dimension numbers, so only the flip is copied. Swapping
# the axes in memory (as `_flipped_kernel` does) costs more than the whole product on
# weight-heavy layers.
_HWOI_SPEC = lax.ConvDimensionNumbers((0, 3, 1, 2), (2, 3, 0, 1), (0, 3, 1, 2))


def input_grad_onednn(dy, w, geometry: Geometry) -> jax.Array:
    """At stride 1, inside the program; at other strides, oneDNN's backward-data primitive
    (a host call: the jaxlib call is a forward one, which would have to run over the output
    gradient dilated with zeros)."""
    if _onednn_input_grad_route(geometry, jnp.dtype(dy.dtype).name) == "library":
        return input_grad_onednn_library(dy, w, geometry)
    transposed = _transposed_geometry(geometry)
    if w.size > dy.size + math.prod(geometry.input_shape):
        # Where the kernel outweighs the images, the images are turned instead: the correlation
        # with the turned kernel is the turned correlation of the turned output gradient, with
        # the padding mirrored (U-Net's 1024-channel layers: a 37 MB kernel against 1 MB images).
        mirrored = [(high, low) for low, high in transposed.padding]
        turned = onednn.convolution(
            dy[:, ::-1, ::-1], w, _HWOI_SPEC, (1, 1), mirrored, transposed.dilation
        )
        return turned[:, ::-1, ::-1]
    return onednn.convolution(
        dy, w[::-1, ::-1], _HWOI_SPEC, (1, 1), transposed.padding, transposed.dilation
    )


def input_grad_xla(dy, w, geometry: Geometry) -> jax.Array:
    shape = jax.ShapeDtypeStruct(geometry.input_shape, dy.dtype)
    return jax.linear_transpose(lambda x: _xla_forward(x, w, geometry), shape)(dy)[0]


def kernel_grad_onednn(x, dy, geometry: Geometry) -> jax.Array:
    """Non-negative padding only."""
    return dnnl.kernel_gradient(
        x, dy, geometry.kernel_shape[:2], geometry.strides, geometry.padding, geometry.dilation
    )


def forward_onednn_winograd(x, w, geometry: Geometry) -> jax.Array:
    return dnnl.forward(x, w, geometry.strides, geometry.padding, geometry.dilation, dnnl.WINOGRAD)


def input_grad_onednn_library(dy, w, geometry: Geometry) -> jax.Array:
    """oneDNN's backward-data primitive, at any stride (a host call)."""
    window = (geometry.strides, geometry.padding, geometry.dilation)
    return dnnl.input_gradient(w, dy, geometry.input_shape, *window)


def input_grad_onednn_winograd(dy, w, geometry: Geometry) -> jax.Array:
    window = (geometry.strides, geometry.padding, geometry.dilation)
    return dnnl.input_gradient(w, dy, geometry.input_shape, *window, dnnl.WINOGRAD)


def kernel_grad_onednn_winograd(x, dy, geometry: Geometry) -> jax.Array:
    window = (geometry.strides, geometry.padding, geometry.dilation)
    return dnnl.kernel_gradient(x, dy, geometry.kernel_shape[:2], *window, dnnl.WINOGRAD)


def kernel_grad_xla(x, dy, geometry: Geometry) -> jax.Array:
    shape = jax.ShapeDtypeStruct(geometry.kernel_shape, x.dtype)
    return jax.linear_transpose(lambda w: _xla_forward(x, w, geometry), shape)(dy)[0]


@dataclasses.dataclass(frozen=True)
class Winograd:
    """Winograd's minimal filtering F(m x m, 3x3) (Lavin and Gray, 2016): each m x m block of
    outputs from one (m + 2) x (m + 2) input tile, `(m + 2)**2` multiplications where the direct
    form has `9 m**2`. Each row lists the coefficients of a tile's (or the kernel's) entries:
    `input` is B^T, `kernel` G, `output` A^T."""

    outputs: int  # m
    input: tuple[tuple[float, ...], ...]
    kernel: tuple[tuple[float, ...], ...]
    output: tuple[tuple[float, ...], ...]

    @property
    def tile(self) -> int:
        return self.outputs + 2


# F(2x2, 3x3) on the points 0, 1, -1 (2.25x fewer multiplications) and F(4x4, 3x3) on 0, 1, -1,
# 2, -2 (4x fewer; its larger coefficients cost about one more decimal digit of float32).
WINOGRAD = {
    "winograd": Winograd(
        outputs=2,
        input=((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
        kernel=((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1)),
        output=((1, 1, 1, 0), (0, 1, -1, -1)),
    ),
    "winograd4": Winograd(
        outputs=4,
        input=(
            (4, 0, -5, 0, 1, 0),
            (0, -4, -4, 1, 1, 0),
            (0, 4, -4, -1, 1, 0),
            (0, -2, -1, 2, 1, 0),
            (0, 2, -1, -2, 1, 0),
            (0, 4, 0, -5, 0, 1),
        ),
        kernel=(
            (1 / 4, 0, 0),
            (-1 / 6, -1 / 6, -1 / 6),
            (-1 / 6, 1 / 6, -1 / 6),
            (1 / 24, 1 / 12, 1 / 6),
            (1 / 24, -1 / 12, 1 / 6),
            (0, 0, 1),
        ),
        output=((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)),
    ),
}


def _combine(parts: Sequence[jax.Array], rows) -> list[jax.Array]:
    """`sum_k rows[r][k] * parts[k]` for each row, skipping zero coefficients (XLA fuses these
    into a few elementwise passes)."""
    out = []
    for row in rows:
        total = None
        for coefficient, part in zip(row, parts, strict=True):
            if coefficient:
                term = (
                    part if coefficient == 1 else -part if coefficient == -1 else part * coefficient
                )
                total = term if total is None else total + term
        out.append(total)
    return out


def _tile_rows(a: jax.Array, axis: int, tiles: int, step: int, size: int) -> list[jax.Array]:
    """Row i = 0..size-1 (along `axis`) of every `size`-long tile, the tiles `step` apart,
    `tiles` of them: a[step * t + i]. Contiguous slices split into groups of `step`, so no
    strided gather; `a` must be at least `step * (tiles + 1)` long."""
    rows = []
    for i in range(size):
        start = i // step * step
        part = lax.slice_in_dim(a, start, start + step * tiles, axis=axis)
        part = part.reshape(*part.shape[:axis], tiles, step, *part.shape[axis + 1 :])
        rows.append(lax.index_in_dim(part, i % step, axis=axis + 1, keepdims=False))
    return rows


def _winograd_kernel(w: jax.Array, transform: Winograd, flipped: bool = False) -> jax.Array:
    """G g G^T for every (input, output) channel pair, (tile**2, C, O): one matrix product with
    G's Kronecker square, which XLA computes far faster than two contractions over the taps.
    `flipped`: of the kernel turned by 180 degrees, which only reverses the order of the taps."""
    g = np.asarray(transform.kernel, np.float64)
    square = np.kron(g, g)  # (tile**2, 9), row-major like the taps
    square = jnp.asarray(square[:, ::-1] if flipped else square, w.dtype)
    _, _, channels, features = w.shape
    taps = w.reshape(9, channels * features)
    return _matmul(square, taps, ((1,), (0,))).reshape(-1, channels, features)


def forward_winograd(x, w, geometry: Geometry, transform: Winograd) -> jax.Array:
    return _winograd(x, _winograd_kernel(w, transform), 1, geometry, transform)


def input_grad_winograd(dy, w, geometry: Geometry, transform: Winograd) -> jax.Array:
    """The transposed convolution's Winograd kernel straight from `w`: the flip reverses its
    taps, and the exchange of its channel axes becomes the axis the products contract, so `w`
    is never copied (a copy costs much of the product on weight-heavy layers)."""
    kernel = _winograd_kernel(w, transform, flipped=True)
    return _winograd(dy, kernel, 2, _transposed_geometry(geometry), transform)


def _winograd(x, kernel, contracted: int, geometry: Geometry, transform: Winograd) -> jax.Array:
    """The convolution of `x` by a kernel already in Winograd's domain, (tile**2, A, B), whose
    axis `contracted` (1 or 2) meets `x`'s channels; the other one gives the output's."""
    batch, _, _, channels = x.shape
    step, size = transform.outputs, transform.tile
    out_height, out_width = geometry.output_size
    tiles_h, tiles_w = -(-out_height // step), -(-out_width // step)
    # Padded so that the tiles cover a whole number of output blocks, plus what _tile_rows
    # reads past the last tile; the extra outputs are cut off at the end.
    (low_h, high_h), (low_w, high_w) = geometry.padding
    _, height, width, _ = geometry.input_shape
    extra_h = step * (tiles_h + 1) - (height + low_h + high_h)
    extra_w = step * (tiles_w + 1) - (width + low_w + high_w)
    padded = _pad_spatial(x, ((low_h, high_h + extra_h), (low_w, high_w + extra_w)))
    transformed = []
    for row in _combine(_tile_rows(padded, 1, tiles_h, step, size), transform.input):
        transformed.extend(_combine(_tile_rows(row, 2, tiles_w, step, size), transform.input))
    tiles = jnp.stack(transformed).reshape(size * size, batch * tiles_h * tiles_w, channels)
    products = lax.dot_general(
        tiles, kernel, (((2,), (contracted,)), ((0,), (0,))), preferred_element_type=jnp.float32
    ).astype(x.dtype)
    features = products.shape[-1]
    # A^T P A for every tile as one product with A^T's Kronecker square, so the output is one
    # array. Written as elementwise sums over the products' rows, it was m**2 arrays (one per
    # position in the output block) that XLA fused into each consumer separately, and a
    # following batch norm summed each of them in a reduction of its own.
    output = np.asarray(transform.output, np.float64)
    square = jnp.asarray(np.kron(output, output), products.dtype)  # (m**2, tile**2)
    y = _matmul(square, products, ((1,), (0,)))
    # Output (m t + r, m u + c) of block (t, u): the block axes go right after t and u.
    y = y.reshape(step, step, batch, tiles_h, tiles_w, features).transpose(2, 3, 0, 4, 1, 5)
    y = y.reshape(batch, step * tiles_h, step * tiles_w, features)
    return y[:, :out_height, :out_width]


def kernel_grad_winograd(x, dy, geometry: Geometry, transform: Winograd) -> jax.Array:
    shape = jax.ShapeDtypeStruct(geometry.kernel_shape, x.dtype)
    forward = lambda w: forward_winograd(x, w, geometry, transform)  # noqa: E731
    return jax.linear_transpose(forward, shape)(dy)[0]


FORWARD = {
    "xla": _xla_forward,
    "im2col": forward_im2col,
    "taps": forward_taps,
    "winograd": functools.partial(forward_winograd, transform=WINOGRAD["winograd"]),
    "winograd4": functools.partial(forward_winograd, transform=WINOGRAD["winograd4"]),
    "onednn": forward_onednn,
    "onednn_winograd": forward_onednn_winograd,
}
INPUT_GRAD = {
    "xla": input_grad_xla,
    "im2col": input_grad_im2col,
    "col2im": input_grad_col2im,
    "winograd": functools.partial(input_grad_winograd, transform=WINOGRAD["winograd"]),
    "winograd4": functools.partial(input_grad_winograd, transform=WINOGRAD["winograd4"]),
    "onednn": input_grad_onednn,
    "onednn_library": input_grad_onednn_library,
    "onednn_winograd": input_grad_onednn_winograd,
}
KERNEL_GRAD = {
    "xla": kernel_grad_xla,
    "im2col": kernel_grad_im2col,
    "taps": kernel_grad_taps,
    "swapped": kernel_grad_swapped,
    "winograd": functools.partial(kernel_grad_winograd, transform=WINOGRAD["winograd"]),
    "winograd4": functools.partial(kernel_grad_winograd, transform=WINOGRAD["winograd4"]),
    "onednn": kernel_grad_onednn,
    "onednn_winograd": kernel_grad_onednn_winograd,
}


# --- The custom VJP ---------------------------------------------------------------------------


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def planned_conv(x: jax.Array, w: jax.Array, geometry: Geometry, plan: Plan) -> jax.Array:
    """The convolution `geometry` describes, each product computed as `plan` says."""
    return FORWARD[plan.forward](x, w, geometry)


def _planned_forward(x, w, geometry: Geometry, plan: Plan):
    if plan.forward == "im2col" and plan.kernel_grad == "im2col":
        patches = _patches(x, geometry)  # built once, reused by the kernel gradient
        y = _matmul(patches, w.reshape(-1, w.shape[-1]), ((3,), (0,)))
        return y, (x, w, patches)
    return FORWARD[plan.forward](x, w, geometry), (x, w, None)


def _planned_backward(geometry: Geometry, plan: Plan, residuals, dy):
    x, w, patches = residuals
    dx = INPUT_GRAD[plan.input_grad](dy, w, geometry)
    if patches is not None:
        dw = kernel_grad_im2col(x, dy, geometry, patches)
    else:
        dw = KERNEL_GRAD[plan.kernel_grad](x, dy, geometry)
    return dx, dw


planned_conv.defvjp(_planned_forward, _planned_backward)


# --- The entry point --------------------------------------------------------------------------

PlanTable = Mapping[tuple[Geometry, str], Plan]  # (geometry, dtype name) -> Plan


@dataclasses.dataclass(frozen=True)
class PlannedConvolution:
    """`lax.conv_general_dilated`, with each convolution whose (geometry, dtype name) has a
    plan computed as that plan says, every other one by XLA. A model's `convolution` field
    (jaxconv.layers): `model.clone(convolution=PlannedConvolution.of(plans))`.

    Frozen and hashable, so a model holding it stays a valid static argument of `jax.jit`.
    `partitioned`: the plans are for a program XLA partitions over devices (see `candidates`).
    """

    plans: tuple[tuple[tuple[Geometry, str], Plan], ...] = ()
    partitioned: bool = False

    @classmethod
    def of(cls, plans: PlanTable, partitioned: bool = False) -> "PlannedConvolution":
        for (geometry, dtype), plan in plans.items():
            check_plan(plan, geometry, dtype, partitioned)
        return cls(tuple(plans.items()), partitioned)

    def __call__(self, lhs, rhs, window_strides, padding, **options):
        key = planable(lhs, rhs, window_strides, padding, options)
        plan = dict(self.plans).get(key, XLA_PLAN) if key is not None else XLA_PLAN
        if plan != XLA_PLAN:
            return planned_conv(lhs, rhs, key[0], plan)
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, **options)


@dataclasses.dataclass(eq=False)
class ConvolutionRecorder:
    """XLA's convolution that records the (geometry, dtype name) of each planable convolution
    traced through it in `found`: how planning finds a network's convolutions."""

    found: set = dataclasses.field(default_factory=set)

    def __call__(self, lhs, rhs, window_strides, padding, **options):
        key = planable(lhs, rhs, window_strides, padding, options)
        if key is not None:
            self.found.add(key)
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, **options)


# The keyword arguments of `lax.conv_general_dilated` after its first four, with its defaults.
_CONV_DEFAULTS = dict(
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    batch_group_count=1,
    precision=None,
    preferred_element_type=None,
)


def planable(lhs, rhs, window_strides, padding, options: dict) -> tuple[Geometry, str] | None:
    """(geometry, dtype name) of a convolution the formulations cover, else None; `options`
    are the keyword arguments of `lax.conv_general_dilated` the caller gave."""
    geometry = geometry_of(lhs, rhs, window_strides, padding, {**_CONV_DEFAULTS, **options})
    return None if geometry is None else (geometry, jnp.dtype(lhs.dtype).name)


def geometry_of(lhs, rhs, window_strides, padding, options: dict) -> Geometry | None:
    """The Geometry of a 2-D NHWC x HWIO convolution these formulations cover, else None
    (N-D, other layouts, groups, input dilation, mixed dtypes: those stay XLA's). `options`
    are the other arguments of `lax.conv_general_dilated`, by name."""
    if lhs.ndim != 4 or lhs.dtype != rhs.dtype or options["preferred_element_type"] is not None:
        return None
    if options["feature_group_count"] != 1 or options["batch_group_count"] != 1:
        return None
    if options["lhs_dilation"] is not None and tuple(options["lhs_dilation"]) != (1, 1):
        return None
    if options["dimension_numbers"] is None:
        return None
    spec = lax.conv_dimension_numbers(lhs.shape, rhs.shape, options["dimension_numbers"])
    if spec != NHWC_SPEC:
        return None
    rhs_dilation = options["rhs_dilation"]
    dilation = (1, 1) if rhs_dilation is None else tuple(int(d) for d in rhs_dilation)
    strides = tuple(int(s) for s in window_strides)
    if isinstance(padding, str):
        dilated = [dilation[i] * (rhs.shape[i] - 1) + 1 for i in range(2)]
        padding = lax.padtype_to_pads(lhs.shape[1:3], dilated, strides, padding)
    pads = tuple((int(low), int(high)) for low, high in padding)
    if any(value < 0 for pair in pads for value in pair):
        return None
    return Geometry(tuple(lhs.shape), tuple(rhs.shape), strides, pads, dilation)
