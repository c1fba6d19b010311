"""Frozen parameters: no gradient, no update, no optimizer state, batch norm in inference mode."""

import dataclasses
from collections.abc import Iterable
from typing import Any

import flax.traverse_util
import jax
import optax

from jaxconv.transfer.merge import TransferError, compile_patterns, flatten, matches


def trainable_labels(params, trainable: Iterable[str]):
    """'trainable' or 'frozen' for every parameter; a pattern that matches nothing raises (a
    typo would otherwise freeze the whole model)."""
    patterns = compile_patterns(trainable, "trainable")
    names = flatten({"params": params})
    unused = [p.pattern for p in patterns if not any(matches([p], name) for name in names)]
    if unused:
        raise TransferError(
            f"trainable patterns {unused} match no parameter; names look like "
            f"{', '.join(name.partition('/')[2] for name in list(names)[:3])}"
        )
    labels = {name: "trainable" if matches(patterns, name) else "frozen" for name in names}
    return flax.traverse_util.unflatten_dict(labels, sep="/")["params"]


def freeze(tx: optax.GradientTransformation, trainable: Iterable[str]):
    """`tx` for the parameters matching a `trainable` pattern; the others get zero updates and
    no optimizer state. An empty `trainable` returns `tx` (everything trains)."""
    trainable = tuple(trainable)
    if not trainable:
        return tx
    return optax.partition(
        {"trainable": tx, "frozen": optax.set_to_zero()},
        lambda params: trainable_labels(params, trainable),
    )


@dataclasses.dataclass(frozen=True)
class FrozenModel:
    """`model` with its parameters outside `trainable` frozen: no gradient reaches them, and
    `apply` runs the model as at evaluation whatever `train` it is given.

    Inference mode is what a frozen batch norm needs: it normalises with its running statistics
    and leaves them unchanged. Flax's `train` flag switches the whole model, so the trainable
    layers run in inference mode too: dropout is off, and a trainable batch norm learns its
    scale and bias against fixed statistics (the usual advice when fine-tuning part of a network
    with batch norm). The heads of our models are one dense layer, which has neither.

    A dataclass rather than a closure so that two wrappings compare equal.
    """

    model: Any
    trainable: tuple[str, ...]

    def apply(self, variables, *args, train: bool, **kwargs):
        del train
        labels = trainable_labels(variables["params"], self.trainable)
        # Constant to autodiff, so the backward pass stops at the trainable layers.
        params = jax.tree.map(
            lambda param, label: param if label == "trainable" else jax.lax.stop_gradient(param),
            variables["params"],
            labels,
        )
        return self.model.apply({**variables, "params": params}, *args, train=False, **kwargs)


def freeze_model(model, trainable: Iterable[str]):
    """`model` with the parameters outside `trainable` frozen (see `FrozenModel`); with
    `trainable` empty, `model` itself."""
    trainable = tuple(trainable)
    if not trainable:
        return model
    if isinstance(model, FrozenModel):
        model = model.model
    return FrozenModel(model, trainable)
