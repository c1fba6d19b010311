"""oneDNN's convolution, the library PyTorch's CPU convolutions run on, called from XLA.

jaxlib links oneDNN, and its CPU runtime executes a custom call named `__onednn$convolution`
with oneDNN's forward convolution primitive. XLA's own pass that emits that call is built only
into Intel's builds, so a PyPI jaxlib never uses it; `convolution` emits the call itself. It
is often faster than XLA's convolution, most of all on few-channel layers (LeNet's, U-Net's
first, a 3-channel stem); jaxconv.cpu.planning measures it on each machine like every
formulation.

The primitive is oneDNN's forward pass only: a correlation in any dimension order, with
strides, non-negative padding and kernel dilation. The input gradient of a stride-1 convolution
is one too (the output gradient correlated with the flipped kernel); the kernel gradient is not
usefully one (its window is the whole output), so oneDNN's backward primitives come from its
own library instead (jaxconv.cpu.dnnl), with the input gradient at other strides.

The call is an interface inside jaxlib, not a published one: its configuration has changed
between releases. So `available()` runs it once on an awkward small case (strides, asymmetric
padding, dilation, a permuted layout) and compares it with `lax.conv_general_dilated`; where the
call does not compile, fails or disagrees, jaxconv never uses it. A call oneDNN refuses aborts
the process rather than raising, so the probe runs in a child process and `convolution` checks
its operands itself. jaxlib cannot serialise a program holding the call, so JAX's persistent
compilation cache compiles such programs again (with a warning) rather than storing them.
"""

import functools
import json
import subprocess
import sys
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import Primitive
from jax.extend.mlir import ir
from jax.extend.mlir.dialects import stablehlo
from jax.interpreters import mlir

TARGET = "__onednn$convolution"
DTYPES = ("float32",)


def _config(dimension_numbers: lax.ConvDimensionNumbers, strides, padding, dilation) -> str:
    """The call's backend config: XLA's `BackendConfig` proto, as JSON, holding a
    `OneDnnConvolutionConfig`. Axes are the operands' own (logical) axes; oneDNN reads any
    order and reorders to its preferred layout itself. As jaxlib 0.10.2 reads it: axes,
    padding and strides as they are, dilations as XLA's (1: none); earlier releases offset
    some of them by one, a difference `available()` exists to catch."""
    lhs, rhs, out = dimension_numbers
    return json.dumps(
        {
            "onednn_conv_config": {
                "dims": len(lhs),
                "feature_groups": 1,
                "input": {
                    "data": {
                        "batch_dim": lhs[0],
                        "feature_dim": lhs[1],
                        "spatial_dims": list(lhs[2:]),
                    }
                },
                "kernel": {
                    "filter": {
                        "output_feature_dim": rhs[0],
                        "input_feature_dim": rhs[1],
                        "spatial_dims": list(rhs[2:]),
                    }
                },
                "output": {
                    "data": {
                        "batch_dim": out[0],
                        "feature_dim": out[1],
                        "spatial_dims": list(out[2:]),
                    }
                },
                "window": {
                    "pad_left": [low for low, _ in padding],
                    "pad_right": [high for _, high in padding],
                    "strides": list(strides),
                    "window_dilations": list(dilation),
                },
            }
        }
    )


_conv_p = Primitive("onednn_convolution")


@_conv_p.def_abstract_eval
def _abstract(lhs, rhs, *, dimension_numbers, strides, padding, dilation):
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    # oneDNN aborts the process on a call it refuses, so every mismatch is refused here.
    if lhs.ndim != rhs.ndim or lhs.ndim != len(strides) + 2:
        raise ValueError(
            f"oneDNN convolution: ranks {lhs.ndim} and {rhs.ndim} for {len(strides)}-D"
        )
    if lhs.dtype != rhs.dtype or lhs.dtype.name not in DTYPES:
        raise ValueError(f"oneDNN convolution: dtypes {lhs.dtype} and {rhs.dtype}; takes {DTYPES}")
    if lhs.shape[lhs_spec[1]] != rhs.shape[rhs_spec[1]]:
        raise ValueError(
            f"oneDNN convolution: the input has {lhs.shape[lhs_spec[1]]} features, the kernel "
            f"takes {rhs.shape[rhs_spec[1]]}"
        )
    shape = [0] * lhs.ndim
    shape[out_spec[0]] = lhs.shape[lhs_spec[0]]
    shape[out_spec[1]] = rhs.shape[rhs_spec[0]]
    for i, (stride, (low, high), factor) in enumerate(zip(strides, padding, dilation)):
        extent = factor * (rhs.shape[rhs_spec[2 + i]] - 1) + 1
        length = lhs.shape[lhs_spec[2 + i]] + low + high - extent
        if length < 0:
            raise ValueError("oneDNN convolution: the dilated kernel is larger than the input")
        shape[out_spec[2 + i]] = length // stride + 1
    return jax.core.ShapedArray(tuple(shape), lhs.dtype)


@_conv_p.def_impl
def _eager(lhs, rhs, **params):  # outside jit: compiled as a program of its own
    return jax.jit(functools.partial(_conv_p.bind, **params))(lhs, rhs)


def _lowering(ctx, lhs, rhs, *, dimension_numbers, strides, padding, dilation):
    (out_aval,) = ctx.avals_out
    op = stablehlo.CustomCallOp(
        [mlir.aval_to_ir_type(ctx.module_context, out_aval)],
        [lhs, rhs],
        call_target_name=ir.StringAttr.get(TARGET),
        has_side_effect=ir.BoolAttr.get(False),
        backend_config=ir.StringAttr.get(_config(dimension_numbers, strides, padding, dilation)),
        api_version=ir.IntegerAttr.get(ir.IntegerType.get_signless(32), 1),
    )
    return op.results


mlir.register_lowering(_conv_p, _lowering, platform="cpu")


def convolution(
    lhs: jax.Array,
    rhs: jax.Array,
    dimension_numbers: lax.ConvDimensionNumbers,
    strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    dilation: Sequence[int],
) -> jax.Array:
    """`lax.conv_general_dilated(lhs, rhs, strides, padding, rhs_dilation=dilation,
    dimension_numbers=dimension_numbers)`, computed by oneDNN. Padding must be explicit and
    non-negative; check `available()` first."""
    if any(value < 0 for pair in padding for value in pair):
        raise ValueError(f"oneDNN's convolution takes non-negative padding, not {padding}")
    return _conv_p.bind(
        lhs,
        rhs,
        dimension_numbers=lax.ConvDimensionNumbers(*map(tuple, dimension_numbers)),
        strides=tuple(int(s) for s in strides),
        padding=tuple((int(low), int(high)) for low, high in padding),
        dilation=tuple(int(d) for d in dilation),
    )


@functools.cache
def available() -> bool:
    """Whether this jaxlib computes `convolution` correctly here (see the module docstring).

    The check runs in a child process, once per process: a call oneDNN refuses aborts the
    process that makes it, which must not be the caller's."""
    if jax.default_backend() != "cpu":
        return False
    try:
        probe = subprocess.run(
            [sys.executable, "-m", __name__], capture_output=True, timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _agrees_with_xla() -> bool:
    rng = np.random.default_rng(0)
    # CHWN x IHWO -> NHWC, stride (2, 1), padding ((1, 0), (2, 1)), dilation (1, 2): every
    # field of the configuration has a different value in each axis.
    lhs = jnp.asarray(rng.standard_normal((3, 9, 8, 5)), jnp.float32)
    rhs = jnp.asarray(rng.standard_normal((3, 3, 2, 4)), jnp.float32)
    spec = lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("CHWN", "IHWO", "NHWC"))
    arguments = dict(strides=(2, 1), padding=((1, 0), (2, 1)), dilation=(1, 2))
    got = jax.jit(lambda a, b: convolution(a, b, spec, **arguments))(lhs, rhs)
    want = lax.conv_general_dilated(
        lhs,
        rhs,
        arguments["strides"],
        arguments["padding"],
        rhs_dilation=arguments["dilation"],
        dimension_numbers=spec,
        precision=lax.Precision.HIGHEST,
    )
    return bool(np.allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4))


if __name__ == "__main__":
    sys.exit(0 if _agrees_with_xla() else 1)
