"""oneDNN's backward-weights convolution, from oneDNN's own library, inside XLA programs.

jaxlib's oneDNN custom call (jaxconv.ops.onednn) runs oneDNN's forward primitive only, so
without this module the kernel gradient is XLA's: on a 2-core AVX-512 machine its 64-channel
3x3 layers ran at about 40% of the matmul peak, and XLA copies each layer's activations into a
channels-first layout for it first. oneDNN's backward-weights primitive, the one PyTorch's CPU
training uses, computed those kernel gradients 2.3x faster, reading the NHWC arrays as they are.

The primitive comes from oneDNN's library itself, libdnnl (the `onednn-cpu-gomp` wheel,
oneDNN 3.2 with GNU OpenMP threads, a dependency on x86-64 Linux), through its C API with
ctypes, and runs inside a compiled program as a host callback
(`jax.experimental.buffer_callback`): oneDNN reads the program's operand buffers and writes
its result buffer in place, and ctypes releases the GIL while it computes. Each shape's
primitive is created once per process; calls are serialised (the library's scratchpad is
shared, and oneDNN already uses every core). oneDNN picks the kernel gradient's memory layout
itself (blocked for its vector width) and reorders it into HWIO.

`available()` says whether the library loads and computes a small awkward case (strides,
asymmetric padding, dilation) as a direct numpy sum does; where it does not, jaxconv never uses
it and the kernel gradient stays with the other formulations.
"""

import ctypes
import ctypes.util
import functools
import os
import pathlib
import sys
import threading
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import buffer_callback

DTYPES = ("float32",)
LIBRARY = "libdnnl.so.3"

# oneDNN 3.x C API constants (include/oneapi/dnnl/dnnl_types.h and dnnl_common_types.h).
_CPU_ENGINE = 1
_IN_ORDER_STREAM = 1
_F32 = 3
_FORMAT_ANY = 1
_FORWARD_TRAINING = 0x40
_CONVOLUTION_DIRECT = 0x1
_QUERY_IMPL_INFO = 8
_QUERY_WEIGHTS_MD, _QUERY_DIFF_WEIGHTS_MD = 131, 132
_ARG_SRC, _ARG_DST, _ARG_WEIGHTS = 1, 17, 33
_ARG_DIFF_SRC, _ARG_DIFF_DST, _ARG_DIFF_WEIGHTS = 129, 145, 161
_ALLOCATE = ctypes.c_void_p(-1)  # DNNL_MEMORY_ALLOCATE: the library allocates the buffer
_STATUS = {
    1: "out of memory",
    2: "invalid arguments",
    3: "unimplemented",
    5: "runtime error",
}

_Dims = ctypes.c_int64 * 12  # dnnl_dims_t
_Handle = ctypes.c_void_p


class _Arg(ctypes.Structure):  # dnnl_exec_arg_t
    _fields_ = [("arg", ctypes.c_int), ("memory", _Handle)]


class _Version(ctypes.Structure):  # dnnl_version_t
    _fields_ = [
        ("major", ctypes.c_int),
        ("minor", ctypes.c_int),
        ("patch", ctypes.c_int),
        ("hash", ctypes.c_char_p),
        ("cpu_runtime", ctypes.c_uint),
        ("gpu_runtime", ctypes.c_uint),
    ]


_SIGNATURES = {
    "dnnl_version": ([], ctypes.POINTER(_Version)),
    "dnnl_engine_create": ([ctypes.POINTER(_Handle), ctypes.c_int, ctypes.c_size_t], None),
    "dnnl_stream_create": ([ctypes.POINTER(_Handle), _Handle, ctypes.c_uint], None),
    "dnnl_memory_desc_create_with_strides": (
        [ctypes.POINTER(_Handle), ctypes.c_int, _Dims, ctypes.c_int, _Dims],
        None,
    ),
    "dnnl_memory_desc_create_with_tag": (
        [ctypes.POINTER(_Handle), ctypes.c_int, _Dims, ctypes.c_int, ctypes.c_int],
        None,
    ),
    "dnnl_convolution_forward_primitive_desc_create": (
        [ctypes.POINTER(_Handle), _Handle, ctypes.c_int, ctypes.c_int]
        + [_Handle] * 4
        + [_Dims] * 4
        + [_Handle],
        None,
    ),
    "dnnl_convolution_backward_weights_primitive_desc_create": (
        [ctypes.POINTER(_Handle), _Handle, ctypes.c_int]
        + [_Handle] * 4
        + [_Dims] * 4
        + [_Handle] * 2,
        None,
    ),
    "dnnl_convolution_backward_data_primitive_desc_create": (
        [ctypes.POINTER(_Handle), _Handle, ctypes.c_int]
        + [_Handle] * 3
        + [_Dims] * 4
        + [_Handle] * 2,
        None,
    ),
    "dnnl_reorder_primitive_desc_create": ([ctypes.POINTER(_Handle)] + [_Handle] * 5, None),
    "dnnl_primitive_desc_query": ([_Handle, ctypes.c_int, ctypes.c_int, ctypes.c_void_p], None),
    "dnnl_primitive_desc_query_md": ([_Handle, ctypes.c_int, ctypes.c_int], _Handle),
    "dnnl_primitive_create": ([ctypes.POINTER(_Handle), _Handle], None),
    "dnnl_memory_create": ([ctypes.POINTER(_Handle), _Handle, _Handle, ctypes.c_void_p], None),
    "dnnl_memory_destroy": ([_Handle], None),
    "dnnl_primitive_execute": ([_Handle, _Handle, ctypes.c_int, ctypes.POINTER(_Arg)], None),
    "dnnl_stream_wait": ([_Handle], None),
}


def _library_paths() -> list[str]:
    """Where pip puts the wheel's library (the environment's lib/), then the system's."""
    paths = [str(pathlib.Path(sys.prefix) / "lib" / LIBRARY)]
    found = ctypes.util.find_library("dnnl")
    return paths + ([found] if found else [])


@functools.cache
def _library() -> ctypes.CDLL | None:
    """libdnnl with its C API typed, or None where it is missing or not oneDNN 3."""
    # GNU OpenMP's threads otherwise spin for a while after each call, on the cores XLA's
    # threads need next. A value the user set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    for path in _library_paths():
        if not os.path.exists(path) and os.sep in path:
            continue
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name, (arguments, result) in _SIGNATURES.items():
            function = getattr(library, name)
            function.argtypes = arguments
            function.restype = ctypes.c_int if result is None else result
        if library.dnnl_version().contents.major == 3:
            return library
    return None


def _call(name: str, *arguments) -> None:
    status = getattr(_library(), name)(*arguments)
    if status != 0:
        raise RuntimeError(f"oneDNN's {name} failed: {_STATUS.get(status, status)}")


def _dims(values: Sequence[int]) -> _Dims:
    dims = _Dims()
    for index, value in enumerate(values):
        dims[index] = value
    return dims


def _new(name: str, *arguments) -> _Handle:
    handle = _Handle()
    _call(name, ctypes.byref(handle), *arguments)
    return handle


@functools.cache
def _engine_and_stream() -> tuple[_Handle, _Handle]:
    engine = _new("dnnl_engine_create", _CPU_ENGINE, 0)
    return engine, _new("dnnl_stream_create", engine, _IN_ORDER_STREAM)


def _plain(logical: Sequence[int], strides: Sequence[int]) -> _Handle:
    return _new(
        "dnnl_memory_desc_create_with_strides", len(logical), _dims(logical), _F32, _dims(strides)
    )


def _nhwc(batch: int, height: int, width: int, channels: int) -> _Handle:
    # oneDNN's logical order is (N, C, H, W) whatever the memory's.
    return _plain(
        (batch, channels, height, width), (height * width * channels, 1, width * channels, channels)
    )


def _hwio(kernel_shape: Sequence[int]) -> _Handle:
    kernel_height, kernel_width, channels, features = kernel_shape
    return _plain(
        (features, channels, kernel_height, kernel_width),
        (1, features, kernel_width * channels * features, channels * features),
    )


def _any_layout(kernel_shape: Sequence[int]) -> _Handle:
    """A kernel descriptor leaving its memory layout to the primitive."""
    kernel_height, kernel_width, channels, features = kernel_shape
    logical = _dims((features, channels, kernel_height, kernel_width))
    return _new("dnnl_memory_desc_create_with_tag", 4, logical, _F32, _FORMAT_ANY)


def _window(strides, padding, dilation) -> tuple[_Dims, ...]:
    return (
        _dims(strides),
        _dims([factor - 1 for factor in dilation]),  # oneDNN's 0 is no dilation
        _dims([low for low, _ in padding]),
        _dims([high for _, high in padding]),
    )


def _implementation(descriptor: _Handle) -> str:
    name = ctypes.c_char_p()
    _call("dnnl_primitive_desc_query", descriptor, _QUERY_IMPL_INFO, 0, ctypes.byref(name))
    return (name.value or b"").decode()


# One call at a time: the library's scratchpad is shared, and one call uses every core.
_EXECUTION = threading.Lock()


class _Backward:
    """oneDNN's backward primitive of one convolution shape (NHWC x HWIO), with the kernel in
    the layout the primitive chose and a reorder between that and HWIO."""

    def __init__(self, role: str, input_shape, kernel_shape, output_shape, window):
        engine, _ = _engine_and_stream()
        self.input_shape, self.kernel_shape = tuple(input_shape), tuple(kernel_shape)
        self._role = role
        image = _nhwc(*input_shape)
        output_gradient = _nhwc(*output_shape)
        hwio, chosen_layout = _hwio(kernel_shape), _any_layout(kernel_shape)
        forward = _new(  # the hint a backward primitive is created from
            "dnnl_convolution_forward_primitive_desc_create",
            engine,
            _FORWARD_TRAINING,
            _CONVOLUTION_DIRECT,
            image,
            chosen_layout,
            None,
            output_gradient,
            *window,
            None,
        )
        if role == "kernel_gradient":  # (src, diff_weights, diff_bias, diff_dst)
            creator = "dnnl_convolution_backward_weights_primitive_desc_create"
            query = _QUERY_DIFF_WEIGHTS_MD
            operands = (image, chosen_layout, None, output_gradient)
        else:  # (diff_src, weights, diff_dst)
            creator = "dnnl_convolution_backward_data_primitive_desc_create"
            query = _QUERY_WEIGHTS_MD
            operands = (image, chosen_layout, output_gradient)
        backward = _new(creator, engine, _CONVOLUTION_DIRECT, *operands, *window, forward, None)
        self.implementation = _implementation(backward)
        blocked = _library().dnnl_primitive_desc_query_md(backward, query, 0)
        source, target = (blocked, hwio) if role == "kernel_gradient" else (hwio, blocked)
        reorder = _new("dnnl_reorder_primitive_desc_create", source, engine, target, engine, None)
        self._primitive = _new("dnnl_primitive_create", backward)
        self._reorder = _new("dnnl_primitive_create", reorder)
        self._blocked = _new("dnnl_memory_create", blocked, engine, _ALLOCATE)
        self._descriptors = (image, hwio, output_gradient)
        # Primitive descriptors stay alive with the primitives made from them.
        self._keep = (chosen_layout, forward, backward, reorder)

    def __call__(
        self, first: np.ndarray, dy: np.ndarray, result: np.ndarray | None = None
    ) -> np.ndarray:
        """The kernel gradient of (x, dy), or the input gradient of (w, dy), written into
        `result` when given (a C-contiguous float32 array of the gradient's shape)."""
        engine, stream = _engine_and_stream()
        first = np.ascontiguousarray(first, np.float32)
        dy = np.ascontiguousarray(dy, np.float32)
        kernel_gradient = self._role == "kernel_gradient"
        shape = self.kernel_shape if kernel_gradient else self.input_shape
        if result is None:
            result = np.empty(shape, np.float32)
        elif result.shape != shape or result.dtype != np.float32 or not result.flags.c_contiguous:
            raise ValueError(
                f"oneDNN convolution: the gradient goes into a C-contiguous float32 array of "
                f"shape {shape}, not {result.dtype} {result.shape}"
            )
        image, hwio, output_gradient = self._descriptors
        x, w = (first, result) if kernel_gradient else (result, first)
        memories = []
        try:
            for descriptor, array in ((image, x), (hwio, w), (output_gradient, dy)):
                pointer = array.ctypes.data_as(ctypes.c_void_p)
                memories.append(_new("dnnl_memory_create", descriptor, engine, pointer))
            image, kernel, output_gradient = memories
            with _EXECUTION:
                if kernel_gradient:
                    _execute(
                        self._primitive,
                        stream,
                        {
                            _ARG_SRC: image,
                            _ARG_DIFF_DST: output_gradient,
                            _ARG_DIFF_WEIGHTS: self._blocked,
                        },
                    )
                    _execute(self._reorder, stream, {_ARG_SRC: self._blocked, _ARG_DST: kernel})
                else:
                    _execute(self._reorder, stream, {_ARG_SRC: kernel, _ARG_DST: self._blocked})
                    _execute(
                        self._primitive,
                        stream,
                        {
                            _ARG_WEIGHTS: self._blocked,
                            _ARG_DIFF_DST: output_gradient,
                            _ARG_DIFF_SRC: image,
                        },
                    )
                _call("dnnl_stream_wait", stream)
        finally:
            for memory in memories:
                _library().dnnl_memory_destroy(memory)
        return result


def _execute(primitive: _Handle, stream: _Handle, arguments: dict[int, _Handle]) -> None:
    array = (_Arg * len(arguments))(*(_Arg(kind, memory) for kind, memory in arguments.items()))
    _call("dnnl_primitive_execute", primitive, stream, len(arguments), array)


@functools.cache
def _primitive(role: str, input_shape, kernel_shape, output_shape, strides, padding, dilation):
    window = _window(strides, padding, dilation)
    return _Backward(role, input_shape, kernel_shape, output_shape, window)


def _check(input_shape, kernel_shape, output_shape, strides, padding, dilation) -> None:
    """oneDNN refuses (or misreads) anything else; each mismatch is named here instead."""
    if not len(input_shape) == len(kernel_shape) == len(output_shape) == 4:
        raise ValueError(
            f"oneDNN convolution: 2-D NHWC x HWIO only, not {input_shape}, {kernel_shape}"
        )
    if input_shape[0] != output_shape[0] or (input_shape[3], output_shape[3]) != kernel_shape[2:]:
        raise ValueError(
            f"oneDNN convolution: input {input_shape}, kernel {kernel_shape} and output "
            f"{output_shape} disagree in batch or features"
        )
    if any(value < 0 for pair in padding for value in pair):
        raise ValueError(f"oneDNN's convolution takes non-negative padding, not {padding}")
    for length, out_length, kernel, stride, (low, high), factor in zip(
        input_shape[1:3], output_shape[1:3], kernel_shape[:2], strides, padding, dilation
    ):
        if (length + low + high - factor * (kernel - 1) - 1) // stride + 1 != out_length:
            raise ValueError(
                f"oneDNN convolution: an output of {output_shape} does not come from an input "
                f"of {input_shape} with kernel {kernel_shape}, strides {strides}, padding "
                f"{padding}, dilation {dilation}"
            )


def _shape(input_shape, kernel_shape, output_shape, strides, padding, dilation) -> tuple:
    shape = (
        tuple(int(n) for n in input_shape),
        tuple(int(n) for n in kernel_shape),
        tuple(int(n) for n in output_shape),
        tuple(int(s) for s in strides),
        tuple((int(low), int(high)) for low, high in padding),
        tuple(int(d) for d in dilation),
    )
    _check(*shape)
    return shape


def _host_call(role: str, first: jax.Array, dy: jax.Array, shape: tuple, result_shape) -> jax.Array:
    if first.dtype != np.float32 or dy.dtype != np.float32:
        raise ValueError(f"oneDNN convolution: dtypes {first.dtype} and {dy.dtype}; takes {DTYPES}")

    def on_host(context, result, first, dy):
        del context  # the CPU's: nothing to synchronise with
        _primitive(role, *shape)(np.asarray(first), np.asarray(dy), np.asarray(result))

    result = jax.ShapeDtypeStruct(result_shape, first.dtype)
    # A buffer callback reads the program's buffers and writes its result in place, where
    # `jax.pure_callback` copies every operand into a new array first (3 ms for a 16 MB
    # activation on a 2-core machine, about 20 times a step in ResNet-18).
    call = buffer_callback.buffer_callback(on_host, result, vmap_method="sequential")
    return call(first, dy)


def kernel_gradient(x, dy, kernel_size, strides, padding, dilation) -> jax.Array:
    """The HWIO gradient of a 2-D NHWC x HWIO convolution's kernel (a correlation, as
    `lax.conv_general_dilated`), given its input `x` and output gradient `dy`, by oneDNN.
    float32 only, non-negative padding; check `available()` first."""
    kernel_shape = (*kernel_size, x.shape[3], dy.shape[3])
    shape = _shape(x.shape, kernel_shape, dy.shape, strides, padding, dilation)
    return _host_call("kernel_gradient", x, dy, shape, kernel_shape)


def input_gradient(w, dy, input_shape, strides, padding, dilation) -> jax.Array:
    """The gradient of the same convolution's input (of `input_shape`), given its HWIO kernel
    `w` and output gradient `dy`, by oneDNN's backward-data primitive; any stride."""
    shape = _shape(input_shape, w.shape, dy.shape, strides, padding, dilation)
    return _host_call("input_gradient", w, dy, shape, tuple(input_shape))


def _direct_gradients(x, w, dy, strides, padding, dilation) -> tuple[np.ndarray, np.ndarray]:
    """The input and kernel gradients by numpy: each kernel cell's input pixels (at the
    stride, dilation and padding) against the output gradient."""
    padded = np.pad(x.astype(np.float64), ((0, 0), *padding, (0, 0)))
    dx = np.zeros_like(padded)
    dw = np.zeros(w.shape, np.float64)
    _, out_height, out_width, _ = dy.shape
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            top, left = i * dilation[0], j * dilation[1]
            cells = (
                slice(None),
                slice(top, top + (out_height - 1) * strides[0] + 1, strides[0]),
                slice(left, left + (out_width - 1) * strides[1] + 1, strides[1]),
            )
            dw[i, j] = np.einsum("nhwc,nhwo->co", padded[cells], dy)
            dx[cells] += np.einsum("nhwo,co->nhwc", dy, w[i, j])
    (low_h, _), (low_w, _) = padding
    return dx[:, low_h : low_h + x.shape[1], low_w : low_w + x.shape[2]], dw


@functools.cache
def available() -> bool:
    """Whether libdnnl loads here and computes an awkward case (stride (2, 1), padding
    ((1, 0), (2, 1)), dilation (1, 2)) as `_direct_gradients` does; once per process."""
    if jax.default_backend() != "cpu":
        return False
    rng = np.random.default_rng(0)
    window = ((2, 1), ((1, 0), (2, 1)), (1, 2))
    x = rng.standard_normal((2, 9, 8, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 5, 4)).astype(np.float32)
    dy = rng.standard_normal((2, 4, 9, 4)).astype(np.float32)
    try:
        if _library() is None:
            return False
        _check(x.shape, w.shape, dy.shape, *window)
        dw = _Backward("kernel_gradient", x.shape, w.shape, dy.shape, _window(*window))(x, dy)
        dx = _Backward("input_gradient", x.shape, w.shape, dy.shape, _window(*window))(w, dy)
    except (OSError, RuntimeError, AttributeError):
        return False
    want_dx, want_dw = _direct_gradients(x, w, dy, *window)
    close = functools.partial(np.allclose, rtol=1e-4, atol=1e-4)
    return bool(close(dx, want_dx) and close(dw, want_dw))
