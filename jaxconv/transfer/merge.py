"""Pretrained variables merged into a freshly initialised model, by name.

Names are flat paths like `params/stage2/block1/conv1/kernel`; patterns are regular expressions
matched in full against the name without its collection (`stage2/block1/conv1/kernel`,
`head/bias`), as big_vision's `dont_load` does.
"""

import re
from collections.abc import Iterable

import flax.traverse_util
import jax
import numpy as np

from jaxconv.configs.base import CLASS_LAYERS
from jaxconv.errors import DataError


class TransferError(DataError):
    """Pretrained variables that do not fit the model; the message lists every problem by name."""


def flatten(variables) -> dict:
    """{'params/stage1/block1/conv1/kernel': leaf, ...}."""
    return flax.traverse_util.flatten_dict(dict(variables), sep="/")


def compile_patterns(patterns: Iterable[str], option: str) -> list[re.Pattern]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as error:
            raise TransferError(f"{option} pattern {pattern!r} is not a regex: {error}") from None
    return compiled


def matches(patterns: Iterable[re.Pattern], flat_name: str) -> bool:
    """Whether a pattern matches the name without its collection ('head/kernel')."""
    name = flat_name.partition("/")[2]
    return any(pattern.fullmatch(name) for pattern in patterns)


def merge(init_variables, pretrained_variables, dont_load: Iterable[str] = CLASS_LAYERS) -> dict:
    """`init_variables` with every variable replaced by its pretrained value, except those
    matching a `dont_load` pattern, which keep their initialisation.

    The result has the structure and dtypes of `init_variables`. A variable missing from either
    tree, or of another shape, raises a TransferError listing all of them by name unless a
    `dont_load` pattern covers it.
    """
    skipped = compile_patterns(dont_load, "dont_load")
    fresh, pretrained = flatten(init_variables), flatten(pretrained_variables)
    merged, problems = {}, []
    for name, leaf in fresh.items():
        if matches(skipped, name):
            merged[name] = leaf
        elif name not in pretrained:
            problems.append(f"missing {name} {leaf.shape}")
        elif np.shape(pretrained[name]) != leaf.shape:
            problems.append(
                f"shape of {name}: pretrained {np.shape(pretrained[name])}, model {leaf.shape}"
            )
        else:
            merged[name] = pretrained[name].astype(leaf.dtype)
    problems += [
        f"unexpected {name} {np.shape(value)}"
        for name, value in pretrained.items()
        if name not in fresh and not matches(skipped, name)
    ]
    if problems:
        raise TransferError(
            "the pretrained variables do not fit the model (add a transfer.dont_load pattern "
            "for those that should keep their initialisation):\n  " + "\n  ".join(problems)
        )
    return flax.traverse_util.unflatten_dict(merged, sep="/")


def load_into_state(state, pretrained_variables, dont_load: Iterable[str] = CLASS_LAYERS):
    """A fresh TrainState holding the merged variables, each on its old leaf's devices, with
    its optimizer state and moving average started again from them."""
    merged = merge(state.variables(), pretrained_variables, dont_load)
    merged = jax.tree.map(
        lambda new, old: jax.device_put(new, old.sharding), merged, state.variables()
    )
    params = merged["params"]
    return state.replace(
        params=params,
        batch_stats=merged.get("batch_stats", state.batch_stats),
        opt_state=state.tx.init(params),
        ema_params=params if state.ema_params else state.ema_params,
    )
