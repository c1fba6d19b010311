"""oneDNN's convolution primitives, from oneDNN's own library, inside XLA programs.

jaxlib's oneDNN custom call (jaxconv.cpu.onednn) runs oneDNN's direct forward primitive only,
so without this module the kernel gradient is XLA's, far from the matmul peak, and XLA copies
each layer's activations into a channels-first layout for it first. oneDNN's backward-weights
primitive, the one PyTorch's CPU training uses, reads the NHWC arrays as they are.

oneDNN also computes 3x3 stride-1 convolutions by Winograd's F(4x4, 3x3) (`WINOGRAD`), all
three products, with the tiles transformed, multiplied and transformed back block by block in
the cache, where jaxconv's own Winograd (jaxconv.cpu.fast_conv) makes a pass over memory for
each step; it beats oneDNN's direct kernels where channels are many. It reads and writes its
images in a blocked layout of its own, into which the NHWC arrays are reordered.

The primitives come from oneDNN's library itself, libdnnl (the `onednn-cpu-gomp` wheel 2022.2.1,
oneDNN 2.6 with GNU OpenMP threads, a dependency on x86-64 Linux; oneDNN 3 no longer has the f32
Winograd kernels), through its C API with ctypes, and run inside a compiled program as host
callbacks (`jax.experimental.buffer_callback`): oneDNN reads the program's operand buffers and
writes its result buffer in place, and ctypes releases the GIL while it computes. Each shape's
primitive is created once per process; calls are serialised (the library's scratchpad is
shared, and oneDNN already uses every core). Where a primitive wants another memory layout than
NHWC images and HWIO kernels (blocked for its vector width), its operands are reordered by
oneDNN's reorder primitive on the way in and its result on the way out.

`available()` says whether the library loads and computes a small awkward case (strides,
asymmetric padding, dilation) as a direct numpy sum does; where it does not, jaxconv never uses
it and those products stay with the other formulations. `winograd_applies` says whether oneDNN
has a Winograd kernel for a shape.
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
LIBRARY = "libdnnl.so.2"
MAJOR_VERSION = 2
DIRECT, WINOGRAD = "direct", "winograd"
ROLES = ("forward", "input_gradient", "kernel_gradient")

# oneDNN 2.x C API constants (include/oneapi/dnnl/dnnl_types.h).
_CPU_ENGINE = 1
_IN_ORDER_STREAM = 1
_F32 = 3
_FORMAT_ANY = 1
_FORWARD_TRAINING = 0x40
_ALGORITHMS = {DIRECT: 0x1, WINOGRAD: 0x2}
_QUERY_IMPL_INFO = 8
_QUERY_SRC_MD, _QUERY_DIFF_SRC_MD, _QUERY_WEIGHTS_MD = 129, 130, 131
_QUERY_DIFF_WEIGHTS_MD, _QUERY_DST_MD, _QUERY_DIFF_DST_MD = 132, 133, 134
_QUERY_SCRATCHPAD_MD = 136
_USER_SCRATCHPAD = 1  # dnnl_scratchpad_mode_user
_ARG_SRC, _ARG_DST, _ARG_WEIGHTS = 1, 17, 33
_ARG_DIFF_SRC, _ARG_DIFF_DST, _ARG_DIFF_WEIGHTS = 129, 145, 161
_ARG_SCRATCHPAD = 80
_NO_BUFFER = None  # DNNL_MEMORY_NONE: a memory whose buffer is set before each call
_ALIGNMENT = 4096  # of the workspace's buffers: a page, more than any kernel asks for
_STATUS = {
    1: "out of memory",
    2: "invalid arguments",
    3: "unimplemented",
    5: "runtime error",
}
# oneDNN 2's descriptors are C structs the caller allocates and the library fills in; these
# sizes exceed sizeof(dnnl_memory_desc_t) (about 1 KB) and sizeof(dnnl_convolution_desc_t)
# (about 5 KB) several times over, and only pointers to them cross the API.
_MEMORY_DESC_BYTES = 4096
_OPERATION_DESC_BYTES = 32768

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


_Pointer = ctypes.c_void_p  # to a descriptor struct
_SIGNATURES = {
    "dnnl_engine_create": ([ctypes.POINTER(_Handle), ctypes.c_int, ctypes.c_size_t], None),
    "dnnl_stream_create": ([ctypes.POINTER(_Handle), _Handle, ctypes.c_uint], None),
    "dnnl_memory_desc_init_by_strides": (
        [_Pointer, ctypes.c_int, _Dims, ctypes.c_int, _Dims],
        None,
    ),
    "dnnl_memory_desc_init_by_tag": (
        [_Pointer, ctypes.c_int, _Dims, ctypes.c_int, ctypes.c_int],
        None,
    ),
    "dnnl_memory_desc_equal": ([_Pointer, _Pointer], ctypes.c_int),
    "dnnl_memory_desc_get_size": ([_Pointer], ctypes.c_size_t),
    "dnnl_primitive_attr_create": ([ctypes.POINTER(_Handle)], None),
    "dnnl_primitive_attr_set_scratchpad_mode": ([_Handle, ctypes.c_int], None),
    # (desc, prop_kind, alg, src, weights, bias, dst, strides, dilates, padding_l, padding_r)
    "dnnl_dilated_convolution_forward_desc_init": (
        [_Pointer, ctypes.c_int, ctypes.c_int] + [_Pointer] * 4 + [_Dims] * 4,
        None,
    ),
    # (desc, alg, diff_src, weights, diff_dst, strides, dilates, padding_l, padding_r)
    "dnnl_dilated_convolution_backward_data_desc_init": (
        [_Pointer, ctypes.c_int] + [_Pointer] * 3 + [_Dims] * 4,
        None,
    ),
    # (desc, alg, src, diff_weights, diff_bias, diff_dst, strides, dilates, padding_l, padding_r)
    "dnnl_dilated_convolution_backward_weights_desc_init": (
        [_Pointer, ctypes.c_int] + [_Pointer] * 4 + [_Dims] * 4,
        None,
    ),
    "dnnl_primitive_desc_create": (
        [ctypes.POINTER(_Handle), _Pointer, _Handle, _Handle, _Handle],
        None,
    ),
    "dnnl_reorder_primitive_desc_create": (
        [ctypes.POINTER(_Handle), _Pointer, _Handle, _Pointer, _Handle, _Handle],
        None,
    ),
    "dnnl_primitive_desc_query": ([_Handle, ctypes.c_int, ctypes.c_int, ctypes.c_void_p], None),
    "dnnl_primitive_desc_query_md": ([_Handle, ctypes.c_int, ctypes.c_int], _Pointer),
    "dnnl_primitive_create": ([ctypes.POINTER(_Handle), _Handle], None),
    "dnnl_memory_create": ([ctypes.POINTER(_Handle), _Pointer, _Handle, ctypes.c_void_p], None),
    "dnnl_memory_destroy": ([_Handle], None),
    "dnnl_memory_set_data_handle": ([_Handle, ctypes.c_void_p], None),
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
    """libdnnl with its C API typed, or None where it is missing or not oneDNN 2."""
    # GNU OpenMP's threads otherwise spin for a while after each call, on the cores XLA's
    # threads need next. A value the user set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    for path in _library_paths():
        if not os.path.exists(path) and os.sep in path:
            continue
        try:
            library = ctypes.CDLL(path)
            library.dnnl_version.restype = ctypes.POINTER(_Version)
            if library.dnnl_version().contents.major != MAJOR_VERSION:
                continue
            for name, (arguments, result) in _SIGNATURES.items():
                function = getattr(library, name)
                function.argtypes = arguments
                function.restype = ctypes.c_int if result is None else result
        except (OSError, AttributeError):
            continue
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


class _Struct:
    """A descriptor struct the library fills in: its buffer, and the address the API takes."""

    def __init__(self, size: int):
        self.buffer = ctypes.create_string_buffer(size)
        self.address = ctypes.addressof(self.buffer)


@functools.cache
def _engine_and_stream() -> tuple[_Handle, _Handle]:
    engine = _new("dnnl_engine_create", _CPU_ENGINE, 0)
    return engine, _new("dnnl_stream_create", engine, _IN_ORDER_STREAM)


def _plain(logical: Sequence[int], strides: Sequence[int]) -> _Struct:
    descriptor = _Struct(_MEMORY_DESC_BYTES)
    _call(
        "dnnl_memory_desc_init_by_strides",
        descriptor.address,
        len(logical),
        _dims(logical),
        _F32,
        _dims(strides),
    )
    return descriptor


def _nhwc(batch: int, height: int, width: int, channels: int) -> _Struct:
    # oneDNN's logical order is (N, C, H, W) whatever the memory's.
    return _plain(
        (batch, channels, height, width), (height * width * channels, 1, width * channels, channels)
    )


def _hwio(kernel_shape: Sequence[int]) -> _Struct:
    kernel_height, kernel_width, channels, features = kernel_shape
    return _plain(
        (features, channels, kernel_height, kernel_width),
        (1, features, kernel_width * channels * features, channels * features),
    )


def _any_layout(logical: Sequence[int]) -> _Struct:
    """A descriptor of (N, C, H, W) images or an (O, I, H, W) kernel leaving its memory layout
    to the primitive."""
    descriptor = _Struct(_MEMORY_DESC_BYTES)
    _call(
        "dnnl_memory_desc_init_by_tag",
        descriptor.address,
        len(logical),
        _dims(logical),
        _F32,
        _FORMAT_ANY,
    )
    return descriptor


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


# One call at a time: each primitive has one scratchpad, and one call uses every core.
_EXECUTION = threading.Lock()


@functools.cache
def _attributes() -> _Handle:
    """Primitive attributes asking for a scratchpad of the caller's: oneDNN's own is a
    thread-local buffer sized when a primitive is created, and XLA runs host calls on whichever
    of its threads is free, where a primitive created on another thread overran it."""
    attributes = _new("dnnl_primitive_attr_create")
    _call("dnnl_primitive_attr_set_scratchpad_mode", attributes, _USER_SCRATCHPAD)
    return attributes


class _Workspace:
    """Buffers that every primitive's calls share, by slot (an operand's position, or a
    scratchpad): calls are serialised, so one buffer per slot, as large as the largest call
    has needed, serves them all. Buffers of their own cost U-Net's 45 primitives (every
    formulation the planner timed) 3.3 GiB, mostly Winograd's scratchpads."""

    def __init__(self):
        self._buffers: dict[str, np.ndarray] = {}

    def bind(self, memory: _Handle, slot: str, size: int) -> None:
        """Points `memory` (of `size` bytes) at the slot's buffer, grown if it is smaller."""
        buffer = self._buffers.get(slot)
        if buffer is None or buffer.size < size + _ALIGNMENT:
            buffer = self._buffers[slot] = np.empty(size + _ALIGNMENT, np.uint8)
        address = buffer.ctypes.data
        _call("dnnl_memory_set_data_handle", memory, address + (-address) % _ALIGNMENT)


_WORKSPACE = _Workspace()


class _Buffered:
    """A memory of `descriptor`'s layout whose buffer is the workspace's `slot`."""

    def __init__(self, descriptor: int, slot: str):
        engine, _ = _engine_and_stream()
        self.memory = _new("dnnl_memory_create", descriptor, engine, _NO_BUFFER)
        self.size = _library().dnnl_memory_desc_get_size(descriptor)
        self.slot = slot

    def bound(self) -> _Handle:
        _WORKSPACE.bind(self.memory, self.slot, self.size)
        return self.memory


class _Executable:
    """A primitive made from its descriptor, with its scratchpad in the workspace's
    `scratchpad_slot`."""

    def __init__(self, descriptor: _Handle, scratchpad_slot: str):
        self._descriptor = descriptor  # alive with the primitive made from it
        self._primitive = _new("dnnl_primitive_create", descriptor)
        scratchpad = _library().dnnl_primitive_desc_query_md(descriptor, _QUERY_SCRATCHPAD_MD, 0)
        self._scratchpad = None
        if scratchpad and _library().dnnl_memory_desc_get_size(scratchpad):
            self._scratchpad = _Buffered(scratchpad, scratchpad_slot)

    def __call__(self, stream: _Handle, arguments: dict[int, _Handle]) -> None:
        if self._scratchpad is not None:
            arguments = {**arguments, _ARG_SCRATCHPAD: self._scratchpad.bound()}
        array = (_Arg * len(arguments))(*(_Arg(kind, memory) for kind, memory in arguments.items()))
        _call("dnnl_primitive_execute", self._primitive, stream, len(arguments), array)


# Each role's operands (two in, one out), as (execution argument, what the primitive's
# descriptor calls that memory, which array it is: 'image', 'kernel' or 'output').
_OPERANDS = {
    "forward": (
        (_ARG_SRC, _QUERY_SRC_MD, "image"),
        (_ARG_WEIGHTS, _QUERY_WEIGHTS_MD, "kernel"),
        (_ARG_DST, _QUERY_DST_MD, "output"),
    ),
    "input_gradient": (
        (_ARG_WEIGHTS, _QUERY_WEIGHTS_MD, "kernel"),
        (_ARG_DIFF_DST, _QUERY_DIFF_DST_MD, "output"),
        (_ARG_DIFF_SRC, _QUERY_DIFF_SRC_MD, "image"),
    ),
    "kernel_gradient": (
        (_ARG_SRC, _QUERY_SRC_MD, "image"),
        (_ARG_DIFF_DST, _QUERY_DIFF_DST_MD, "output"),
        (_ARG_DIFF_WEIGHTS, _QUERY_DIFF_WEIGHTS_MD, "kernel"),
    ),
}


class _Primitive:
    """oneDNN's primitive for one product (`role`, one of ROLES) of one convolution shape
    (NHWC x HWIO), by `algorithm` (DIRECT or WINOGRAD). Each operand the primitive wants in
    another layout is reordered into a workspace buffer of that layout (or, for the result,
    out of it): the direct kernels take NHWC images as they are and choose the kernel's
    layout; the Winograd kernels choose every layout."""

    def __init__(self, role: str, algorithm: str, input_shape, kernel_shape, output_shape, window):
        engine, _ = _engine_and_stream()
        self.role, self.algorithm = role, algorithm
        self.shapes = {
            "image": tuple(input_shape),
            "kernel": tuple(kernel_shape),
            "output": tuple(output_shape),
        }
        batch, height, width, channels = input_shape
        _, out_height, out_width, features = output_shape
        given = {  # the arrays' layouts
            "image": _nhwc(*input_shape),
            "kernel": _hwio(kernel_shape),
            "output": _nhwc(*output_shape),
        }
        logical = {
            "image": (batch, channels, height, width),
            "kernel": (features, channels, *kernel_shape[:2]),
            "output": (batch, features, out_height, out_width),
        }
        if algorithm == WINOGRAD:
            asked = {name: _any_layout(dims) for name, dims in logical.items()}
        else:
            asked = {**given, "kernel": _any_layout(logical["kernel"])}
        code = _ALGORITHMS[algorithm]
        image, kernel, output = asked["image"], asked["kernel"], asked["output"]
        forward_desc = _Struct(_OPERATION_DESC_BYTES)
        _call(
            "dnnl_dilated_convolution_forward_desc_init",
            forward_desc.address,
            _FORWARD_TRAINING,
            code,
            image.address,
            kernel.address,
            None,
            output.address,
            *window,
        )
        forward = _new(
            "dnnl_primitive_desc_create", forward_desc.address, _attributes(), engine, None
        )
        descriptor = forward
        if role != "forward":  # created with the forward one as its hint
            backward_desc = _Struct(_OPERATION_DESC_BYTES)
            if role == "kernel_gradient":  # (src, diff_weights, diff_bias, diff_dst)
                initialiser = "dnnl_dilated_convolution_backward_weights_desc_init"
                operands = (image.address, kernel.address, None, output.address)
            else:  # (diff_src, weights, diff_dst)
                initialiser = "dnnl_dilated_convolution_backward_data_desc_init"
                operands = (image.address, kernel.address, output.address)
            _call(initialiser, backward_desc.address, code, *operands, *window)
            descriptor = _new(
                "dnnl_primitive_desc_create", backward_desc.address, _attributes(), engine, forward
            )
        self.implementation = _implementation(descriptor)
        self._primitive = _Executable(descriptor, "scratchpad")
        self._given = given
        self._operands = []  # (argument, array name, own memory or None, reorder or None)
        for position, (argument, query, name) in enumerate(_OPERANDS[role]):
            wanted = _library().dnnl_primitive_desc_query_md(descriptor, query, 0)
            if _library().dnnl_memory_desc_equal(wanted, given[name].address):
                self._operands.append((argument, name, None, None))
                continue
            result = position == 2
            source, target = (
                (wanted, given[name].address) if result else (given[name].address, wanted)
            )
            reorder = _new(
                "dnnl_reorder_primitive_desc_create", source, engine, target, engine, _attributes()
            )
            own = _Buffered(wanted, f"operand {position}")
            self._operands.append((argument, name, own, _Executable(reorder, "reorder")))
        # Descriptors stay alive with the primitives made from them.
        self._keep = (asked, forward_desc, forward)

    def __call__(
        self, first: np.ndarray, second: np.ndarray, result: np.ndarray | None = None
    ) -> np.ndarray:
        """The role's product of its two operands (forward: x, w; input gradient: w, dy;
        kernel gradient: x, dy), written into `result` when given (a C-contiguous float32
        array of the product's shape)."""
        engine, stream = _engine_and_stream()
        result_name = _OPERANDS[self.role][2][2]
        shape = self.shapes[result_name]
        if result is None:
            result = np.empty(shape, np.float32)
        elif result.shape != shape or result.dtype != np.float32 or not result.flags.c_contiguous:
            raise ValueError(
                f"oneDNN convolution: the result goes into a C-contiguous float32 array of "
                f"shape {shape}, not {result.dtype} {result.shape}"
            )
        arrays = (np.ascontiguousarray(first, np.float32), np.ascontiguousarray(second, np.float32))
        arrays += (result,)
        memories = []
        try:
            for (_, name, _, _), array in zip(self._operands, arrays):
                if array.shape != self.shapes[name]:
                    raise ValueError(
                        f"oneDNN convolution: the {name} has shape {array.shape}, not "
                        f"{self.shapes[name]}"
                    )
                pointer = array.ctypes.data_as(ctypes.c_void_p)
                memories.append(
                    _new("dnnl_memory_create", self._given[name].address, engine, pointer)
                )
            arguments = {}
            with _EXECUTION:
                for position, ((argument, _, own, reorder), memory) in enumerate(
                    zip(self._operands, memories)
                ):
                    arguments[argument] = memory if own is None else own.bound()
                    if reorder is not None and position < 2:
                        reorder(stream, {_ARG_SRC: memory, _ARG_DST: arguments[argument]})
                self._primitive(stream, arguments)
                argument, _, own, reorder = self._operands[2]
                if reorder is not None:
                    reorder(stream, {_ARG_SRC: arguments[argument], _ARG_DST: memories[2]})
                _call("dnnl_stream_wait", stream)
        finally:
            for memory in memories:
                _library().dnnl_memory_destroy(memory)
        return result


@functools.cache
def _primitive(
    role: str, algorithm: str, input_shape, kernel_shape, output_shape, strides, padding, dilation
):
    window = _window(strides, padding, dilation)
    return _Primitive(role, algorithm, input_shape, kernel_shape, output_shape, window)


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


def _host_call(
    role: str, algorithm: str, first: jax.Array, second: jax.Array, shape: tuple, result_shape
) -> jax.Array:
    if first.dtype != np.float32 or second.dtype != np.float32:
        raise ValueError(
            f"oneDNN convolution: dtypes {first.dtype} and {second.dtype}; takes {DTYPES}"
        )

    def on_host(context, result, first, second):
        del context  # the CPU's: nothing to synchronise with
        primitive = _primitive(role, algorithm, *shape)
        primitive(np.asarray(first), np.asarray(second), np.asarray(result))

    result = jax.ShapeDtypeStruct(result_shape, first.dtype)
    # A buffer callback reads the program's buffers and writes its result in place, where
    # `jax.pure_callback` copies every operand into a new array first (about 20 times a step
    # in ResNet-18, each a pass over an activation).
    call = buffer_callback.buffer_callback(on_host, result, vmap_method="sequential")
    return call(first, second)


def _output_shape(input_shape, kernel_shape, strides, padding, dilation) -> tuple[int, ...]:
    sizes = [
        (length + low + high - factor * (kernel - 1) - 1) // stride + 1
        for length, kernel, stride, (low, high), factor in zip(
            input_shape[1:3], kernel_shape[:2], strides, padding, dilation
        )
    ]
    return (input_shape[0], *sizes, kernel_shape[3])


def forward(x, w, strides, padding, dilation, algorithm: str = DIRECT) -> jax.Array:
    """A 2-D NHWC x HWIO convolution (a correlation, as `lax.conv_general_dilated`) by oneDNN's
    forward primitive; `algorithm` WINOGRAD where `winograd_applies`."""
    output_shape = _output_shape(x.shape, w.shape, strides, padding, dilation)
    shape = _shape(x.shape, w.shape, output_shape, strides, padding, dilation)
    return _host_call("forward", algorithm, x, w, shape, output_shape)


def kernel_gradient(x, dy, kernel_size, strides, padding, dilation, algorithm: str = DIRECT):
    """The HWIO gradient of a 2-D NHWC x HWIO convolution's kernel (a correlation, as
    `lax.conv_general_dilated`), given its input `x` and output gradient `dy`, by oneDNN.
    float32 only, non-negative padding; check `available()` first."""
    kernel_shape = (*kernel_size, x.shape[3], dy.shape[3])
    shape = _shape(x.shape, kernel_shape, dy.shape, strides, padding, dilation)
    return _host_call("kernel_gradient", algorithm, x, dy, shape, kernel_shape)


def input_gradient(w, dy, input_shape, strides, padding, dilation, algorithm: str = DIRECT):
    """The gradient of the same convolution's input (of `input_shape`), given its HWIO kernel
    `w` and output gradient `dy`, by oneDNN's backward-data primitive; any stride."""
    shape = _shape(input_shape, w.shape, dy.shape, strides, padding, dilation)
    return _host_call("input_gradient", algorithm, w, dy, shape, tuple(input_shape))


@functools.cache
def winograd_applies(input_shape, kernel_shape, strides, padding, dilation) -> bool:
    """Whether oneDNN computes all three products of this convolution (float32) by Winograd's
    F(4x4, 3x3) on this machine: 3x3 kernels at stride 1 without dilation, with channel counts
    and padding its kernels take (it says so by creating the primitives or refusing), where
    `winograd_available()`."""
    if not winograd_available() or tuple(kernel_shape[:2]) != (3, 3):
        return False
    if tuple(strides) != (1, 1) or tuple(dilation) != (1, 1):
        return False
    output_shape = _output_shape(input_shape, kernel_shape, strides, padding, dilation)
    try:
        shape = _shape(input_shape, kernel_shape, output_shape, strides, padding, dilation)
        for role in ROLES:
            _primitive(role, WINOGRAD, *shape)
    except (ValueError, RuntimeError):
        return False
    return True


def _direct_products(x, w, dy, strides, padding, dilation) -> tuple[np.ndarray, ...]:
    """The output, input gradient and kernel gradient by numpy: each kernel cell's input
    pixels (at the stride, dilation and padding) against the kernel or the output gradient."""
    padded = np.pad(x.astype(np.float64), ((0, 0), *padding, (0, 0)))
    y = np.zeros(dy.shape, np.float64)
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
            y += np.einsum("nhwc,co->nhwo", padded[cells], w[i, j])
            dw[i, j] = np.einsum("nhwc,nhwo->co", padded[cells], dy)
            dx[cells] += np.einsum("nhwo,co->nhwc", dy, w[i, j])
    (low_h, _), (low_w, _) = padding
    return y, dx[:, low_h : low_h + x.shape[1], low_w : low_w + x.shape[2]], dw


def _agrees_with_direct_sum(algorithm: str, input_shape, kernel_shape, window, seed: int):
    """Whether `algorithm`'s three products of random arrays of these shapes agree with
    `_direct_products` (raises RuntimeError where oneDNN has no such kernel)."""
    rng = np.random.default_rng(seed)
    output_shape = _output_shape(input_shape, kernel_shape, *window)
    _check(input_shape, kernel_shape, output_shape, *window)
    x, w, dy = (
        rng.standard_normal(shape).astype(np.float32)
        for shape in (input_shape, kernel_shape, output_shape)
    )
    shapes = (input_shape, kernel_shape, output_shape, _window(*window))
    got = (
        _Primitive("forward", algorithm, *shapes)(x, w),
        _Primitive("input_gradient", algorithm, *shapes)(w, dy),
        _Primitive("kernel_gradient", algorithm, *shapes)(x, dy),
    )
    want = _direct_products(x, w, dy, *window)
    return all(np.allclose(a, b, rtol=1e-4, atol=1e-4) for a, b in zip(got, want))


@functools.cache
def available() -> bool:
    """Whether libdnnl loads here and computes an awkward case (stride (2, 1), padding
    ((1, 0), (2, 1)), dilation (1, 2)) as `_direct_products` does; once per process."""
    if jax.default_backend() != "cpu":
        return False
    try:
        if _library() is None:
            return False
        window = ((2, 1), ((1, 0), (2, 1)), (1, 2))
        return _agrees_with_direct_sum(DIRECT, (2, 9, 8, 5), (3, 2, 5, 4), window, seed=0)
    except (OSError, RuntimeError, AttributeError):
        return False


@functools.cache
def winograd_available() -> bool:
    """Whether oneDNN has Winograd kernels here (AVX-512 machines) and computes a case with
    ragged 4x4 tiles (a 9x7 output) and more features than channels as `_direct_products`
    does; once per process."""
    if not available():
        return False
    try:
        window = ((1, 1), ((1, 1), (1, 1)), (1, 1))
        return _agrees_with_direct_sum(WINOGRAD, (2, 9, 7, 16), (3, 3, 16, 32), window, seed=1)
    except RuntimeError:  # 'unimplemented': no Winograd kernel for this machine
        return False
