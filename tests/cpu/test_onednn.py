"""oneDNN's convolution through jaxlib's custom call, against XLA's convolution."""

import platform
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxconv.cpu import dnnl, fast_conv, onednn
from jaxconv.cpu.fast_conv import Geometry, Plan

needs_onednn = pytest.mark.skipif(not onednn.available(), reason="no oneDNN call in this jaxlib")


@pytest.mark.skipif(
    platform.machine() != "x86_64" or sys.platform != "linux", reason="checked on x86-64 Linux"
)
def test_jaxlib_carries_a_correct_onednn_convolution_here():
    # The speed of jaxconv's CPU training rests on it: a jaxlib without it must be noticed.
    assert onednn.available()


# (lhs shape, rhs shape, dimension numbers, strides, padding, dilation)
CASES = {
    "nhwc_3x3_same": (
        (2, 9, 9, 5),
        (3, 3, 5, 7),
        ("NHWC", "HWIO", "NHWC"),
        (1, 1),
        ((1, 1), (1, 1)),
        (1, 1),
    ),
    "stride_2_1_asymmetric": (
        (2, 9, 8, 3),
        (3, 2, 3, 4),
        ("NHWC", "HWIO", "NHWC"),
        (2, 1),
        ((1, 0), (0, 2)),
        (1, 1),
    ),
    "dilated": (
        (1, 12, 11, 2),
        (3, 3, 2, 3),
        ("NHWC", "HWIO", "NHWC"),
        (1, 1),
        ((2, 2), (2, 2)),
        (2, 2),
    ),
    "one_input_channel_5x5": (
        (3, 28, 28, 1),
        (5, 5, 1, 6),
        ("NHWC", "HWIO", "NHWC"),
        (1, 1),
        ((2, 2), (2, 2)),
        (1, 1),
    ),
    "1x1_wider_than_the_kernel": (
        (2, 5, 5, 3),
        (1, 1, 3, 4),
        ("NHWC", "HWIO", "NHWC"),
        (1, 1),
        ((1, 2), (2, 1)),
        (1, 1),
    ),
    "nchw_oihw": (
        (2, 4, 7, 6),
        (5, 4, 3, 3),
        ("NCHW", "OIHW", "NCHW"),
        (1, 2),
        ((1, 1), (0, 1)),
        (1, 1),
    ),
    # The kernel gradient's layout: channels as the batch, images as the features.
    "chwn_ihwo_nhwc": (
        (3, 9, 8, 5),
        (3, 3, 2, 4),
        ("CHWN", "IHWO", "NHWC"),
        (2, 1),
        ((1, 0), (2, 1)),
        (1, 2),
    ),
}


@needs_onednn
@pytest.mark.parametrize("name", CASES)
def test_convolution_matches_xla(name):
    lhs_shape, rhs_shape, spec, strides, padding, dilation = CASES[name]
    rng = np.random.default_rng(0)
    lhs = jnp.asarray(rng.standard_normal(lhs_shape), jnp.float32)
    rhs = jnp.asarray(rng.standard_normal(rhs_shape), jnp.float32)
    numbers = lax.conv_dimension_numbers(lhs_shape, rhs_shape, spec)
    got = jax.jit(lambda a, b: onednn.convolution(a, b, numbers, strides, padding, dilation))(
        lhs, rhs
    )
    want = lax.conv_general_dilated(
        lhs,
        rhs,
        strides,
        padding,
        rhs_dilation=dilation,
        dimension_numbers=spec,
        precision=lax.Precision.HIGHEST,
    )
    assert got.shape == want.shape and got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_mismatched_operands_are_refused_before_they_reach_onednn():
    numbers = lax.conv_dimension_numbers((3, 9, 8, 5), (5, 3, 2, 4), ("CHWN", "IHWO", "NHWC"))
    with pytest.raises(ValueError, match="the input has 3 features, the kernel takes 5"):
        onednn.convolution(
            jnp.ones((3, 9, 8, 5)), jnp.ones((5, 3, 2, 4)), numbers, (1, 1), ((0, 0),) * 2, (1, 1)
        )
    numbers = lax.conv_dimension_numbers((1, 5, 5, 1), (3, 3, 1, 1), ("NHWC", "HWIO", "NHWC"))
    with pytest.raises(ValueError, match="dtypes"):
        onednn.convolution(
            jnp.ones((1, 5, 5, 1), jnp.bfloat16),
            jnp.ones((3, 3, 1, 1), jnp.bfloat16),
            numbers,
            (1, 1),
            ((1, 1), (1, 1)),
            (1, 1),
        )
    with pytest.raises(ValueError, match="larger than the input"):
        onednn.convolution(
            jnp.ones((1, 2, 2, 1)), jnp.ones((3, 3, 1, 1)), numbers, (1, 1), ((0, 0),) * 2, (1, 1)
        )


def test_negative_padding_is_refused_before_it_reaches_onednn():
    numbers = lax.conv_dimension_numbers((1, 5, 5, 1), (3, 3, 1, 1), ("NHWC", "HWIO", "NHWC"))
    with pytest.raises(ValueError, match="non-negative padding"):
        onednn.convolution(
            jnp.ones((1, 5, 5, 1)),
            jnp.ones((3, 3, 1, 1)),
            numbers,
            (1, 1),
            ((-1, 0), (0, 0)),
            (1, 1),
        )


def test_a_probe_that_fails_or_is_not_on_the_cpu_means_unavailable(monkeypatch):
    # A oneDNN call it refuses aborts the process (SIGILL here), hence the child process.
    aborted = subprocess.CompletedProcess(args=[], returncode=-4)
    monkeypatch.setattr(onednn.subprocess, "run", lambda *a, **k: aborted)
    assert onednn.available.__wrapped__() is False
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert onednn.available.__wrapped__() is False


def test_without_onednn_no_plan_offers_or_accepts_it(monkeypatch):
    geometry = Geometry((2, 8, 8, 4), (3, 3, 4, 4), (1, 1), ((1, 1), (1, 1)), (1, 1))
    monkeypatch.setattr(onednn, "available", lambda: False)
    monkeypatch.setattr(dnnl, "available", lambda: False)  # oneDNN's library neither
    options = fast_conv.candidates(geometry)
    assert all("onednn" not in names for names in options.values())
    with pytest.raises(ValueError, match="computes the forward by 'onednn'.*delete the plan"):
        fast_conv.check_plan(Plan(forward="onednn"), geometry)


def test_onednn_is_offered_for_float32_and_where_it_can_compute_the_product(monkeypatch):
    monkeypatch.setattr(onednn, "available", lambda: True)
    monkeypatch.setattr(dnnl, "available", lambda: False)  # jaxlib's call alone
    same = Geometry((2, 8, 8, 4), (3, 3, 4, 4), (1, 1), ((1, 1), (1, 1)), (1, 1))
    assert "onednn" in fast_conv.candidates(same)["forward"]
    assert "onednn" in fast_conv.candidates(same)["input_grad"]
    assert "onednn" not in fast_conv.candidates(same, "bfloat16")["forward"]
    # The input gradient is a forward convolution only at stride 1, and only when the padding
    # is no wider than the kernel's reach (else the transposed padding is negative).
    strided = Geometry((2, 8, 8, 4), (3, 3, 4, 4), (2, 2), ((1, 1), (1, 1)), (1, 1))
    assert "onednn" not in fast_conv.candidates(strided)["input_grad"]
    wide = Geometry((2, 5, 5, 3), (1, 1, 3, 4), (1, 1), ((1, 2), (2, 1)), (1, 1))
    assert "onednn" in fast_conv.candidates(wide)["forward"]
    assert "onednn" not in fast_conv.candidates(wide)["input_grad"]
