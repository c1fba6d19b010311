"""A per-layer table of a model: output shape, parameters and FLOPs, with totals.

Nothing is computed: the model is traced once under `jax.eval_shape`, so even VGG-19 summarises in
about a second. FLOPs count the multiply-adds of convolutions, transposed convolutions and dense
layers, two FLOPs each; element-wise work (activations, batch norm, pooling, additions) is left out,
as in the published figures (He et al. 2016 quote ResNet-50 at 3.8 billion multiply-adds; the
torchvision model table lists 4.09 "GFLOPS" for its v1.5 layout, which are multiply-adds, i.e.
8.2 GFLOPs here).
"""

import dataclasses
import math
from typing import Any, TextIO

import flax.linen as nn
import jax
import jax.numpy as jnp

MATMUL_KINDS = (nn.Conv, nn.Dense, nn.ConvTranspose)


@dataclasses.dataclass(frozen=True)
class Layer:
    """One leaf module: its parameter path, type, output shape, parameter count and FLOPs."""

    path: str
    kind: str
    output_shape: tuple[int, ...]
    parameters: int
    flops: int


@dataclasses.dataclass(frozen=True)
class Summary:
    """The layers of a model in call order, with totals; `str()` gives the table."""

    layers: tuple[Layer, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    parameters: int
    state: int
    flops: int

    def __str__(self) -> str:
        return format_table(self)


def summary(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    dtype: Any = jnp.float32,
    file: TextIO | None = None,
) -> Summary:
    """Summarise `model` on NHWC input of `input_shape` ((H, W, C) means a batch of one).

    Returns the Summary, whose `str()` is the table (`print(models.summary(model, shape))`), and
    also prints it to `file` when one is given. FLOPs are for the whole batch.
    """
    if len(input_shape) == 3:
        input_shape = (1, *input_shape)
    calls: list[tuple[tuple[str, ...], nn.Module, Any, Any]] = []
    running: list[tuple[str, ...]] = []  # the paths whose __call__ is under way
    innermost_outputs: dict[tuple[str, ...], Any] = {}

    def record(next_fun, args, kwargs, context):
        if context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        path = tuple(context.module.path)
        # A layer's own inner call (its parent class's __call__, or a module sharing its
        # scope, as jaxconv.layers.Conv's) is part of the layer's one row, and the innermost
        # call's output is the row's: that call does the layer's multiply-adds, and what the
        # layer does to its result (jaxconv.layers.Conv adds a bias, or max-pools and then
        # adds it) is element-wise work, left out as the activations and pools are.
        inner = path in running
        running.append(path)
        try:
            output = next_fun(*args, **kwargs)
        finally:
            running.pop()
        if inner:
            innermost_outputs.setdefault(path, output)
        else:
            calls.append((path, context.module, args, innermost_outputs.pop(path, output)))
        return output

    def init():
        with nn.intercept_methods(record):
            rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
            return model.init_with_output(rngs, jnp.zeros(input_shape, dtype), train=False)

    output, variables = jax.eval_shape(init)
    params = variables.get("params", {})
    layers = tuple(
        describe(path, module, args, out, params) for path, module, args, out in leaves(calls)
    )
    result = Summary(
        layers=layers,
        input_shape=tuple(input_shape),
        output_shape=tuple(output.shape),
        parameters=count(params),
        state=count({key: value for key, value in variables.items() if key != "params"}),
        flops=sum(layer.flops for layer in layers),
    )
    if file is not None:
        print(result, file=file)
    return result


def leaves(calls: list) -> list:
    """The calls of modules that called no other module (Conv, Dense, BatchNorm, ...)."""
    paths = [path for path, *_ in calls]
    return [
        call
        for call in calls
        if not any(
            len(other) > len(call[0]) and other[: len(call[0])] == call[0] for other in paths
        )
    ]


def describe(path: tuple[str, ...], module: nn.Module, args, output, params) -> Layer:
    subtree = params
    for name in path:
        subtree = subtree.get(name, {}) if isinstance(subtree, dict) else {}
    return Layer(
        path="/".join(path),
        kind=type(module).__name__,
        output_shape=tuple(output.shape) if hasattr(output, "shape") else (),
        parameters=count(subtree),
        flops=2 * multiply_adds(module, args, output, subtree),
    )


def multiply_adds(module: nn.Module, args, output, params) -> int:
    """Multiply-adds of a convolution or dense layer: one per kernel weight per output position
    (per input position for a transposed convolution, which scatters each input pixel)."""
    if not isinstance(module, MATMUL_KINDS) or "kernel" not in params:
        return 0
    kernel = params["kernel"]
    if isinstance(module, nn.ConvTranspose):
        positions = math.prod(args[0].shape[:-1])
    else:
        positions = math.prod(output.shape[:-1])
    return positions * math.prod(kernel.shape) // max(getattr(module, "feature_group_count", 1), 1)


def count(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def format_table(result: Summary) -> str:
    header = ("layer", "module", "output shape", "parameters", "FLOPs")
    rows = [
        (
            layer.path,
            layer.kind,
            str(layer.output_shape),
            f"{layer.parameters:,}",
            f"{layer.flops:,}",
        )
        for layer in result.layers
    ]
    rows.append(
        ("total", "", str(result.output_shape), f"{result.parameters:,}", f"{result.flops:,}")
    )
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    line = "  ".join("-" * width for width in widths)

    def render(row):
        left = [cell.ljust(width) for cell, width in zip(row[:3], widths[:3], strict=True)]
        right = [cell.rjust(width) for cell, width in zip(row[3:], widths[3:], strict=True)]
        return "  ".join(left + right).rstrip()

    body = [render(header), line, *map(render, rows[:-1]), line, render(rows[-1])]
    footer = (
        f"input {result.input_shape}; {result.parameters:,} parameters "
        f"({result.state:,} more in batch statistics); "
        f"{human(result.flops)}FLOPs ({human(result.flops // 2)} multiply-adds)"
    )
    return "\n".join([*body, footer])


def human(number: int) -> str:
    """`number` with a decimal prefix, e.g. 8.18 G."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if number >= factor:
            return f"{number / factor:.3g} {prefix}"
    return f"{number} "
