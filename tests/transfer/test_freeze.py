"""Freezing: frozen parameters get no gradient, no optimizer state and no change, their batch norms
keep their running statistics, and the head trains."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxconv import models, transfer
from jaxconv.tasks import classification
from jaxconv.train import parallel
from jaxconv.train import state as state_lib
from jaxconv.train import step as step_lib

SMALL = dict(stage_sizes=(1, 1), stage_widths=(4, 8))
INPUT_SHAPE = (8, 32, 32, 3)  # one row per test device


def adamw():
    # Weight decay on kernels, as the default optimizer: its mask must see only trainable leaves.
    return optax.adamw(1e-2, weight_decay=0.1, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p))


@functools.cache  # states are immutable; building one compiles the model
def frozen_state(trainable):
    """(the frozen model, its state)."""
    model = models.create("resnet18", num_classes=3, **SMALL)
    tx = transfer.freeze(adamw(), trainable)
    create = lambda: state_lib.create(
        model, tx, (1, *INPUT_SHAPE[1:]), jax.random.key(0, impl="rbg")
    )
    state = jax.jit(create)()
    # Running statistics away from their initial 0 and 1, so normalising with them differs
    # from normalising with the batch's.
    batch_stats = jax.tree.map(lambda x: x + 0.5, state.batch_stats)
    return transfer.freeze_model(model, trainable), state.replace(batch_stats=batch_stats)


def sizes(tree):
    return sorted(leaf.size for leaf in jax.tree.leaves(tree))


def test_frozen_parameters_have_no_optimizer_state():
    _, state = frozen_state(("head/.*",))
    head = state.params["head"]
    # adam's mu and nu for the head's kernel and bias, and its step count.
    expected = sorted([1] + 2 * [head["kernel"].size, head["bias"].size])
    assert sizes(state.opt_state) == expected


def test_only_the_head_changes_and_statistics_stay():
    # Built, loaded and stepped as the training loop does, with the parameters sharded over the
    # 8 test devices (the state's structure must survive tracing for shapes, then for values).
    strategy = parallel.JitStrategy(shard_params=True, min_shard_size=1)
    model = models.create("resnet18", num_classes=3, **SMALL)
    tx = transfer.freeze(adamw(), ("head/.*",))

    def create():
        return state_lib.create(model, tx, (1, *INPUT_SHAPE[1:]), jax.random.key(0, impl="rbg"))

    state = strategy.create_state(create)
    # Pretrained values, with running statistics away from their initial 0 and 1.
    pretrained = jax.tree.map(lambda x: x + 0.5, jax.device_get(state.variables()))
    state = transfer.load_into_state(strategy.to_saved(state), pretrained, dont_load=())
    state = strategy.from_saved(state)
    step = strategy.compile_train_step(
        step_lib.train_step,
        model=transfer.freeze_model(model, ("head/.*",)),
        loss_and_metrics=classification.loss_and_metrics,
    )
    rng = np.random.default_rng(0)
    for _ in range(3):
        batch = {
            "image": rng.standard_normal(INPUT_SHAPE, np.float32),
            "label": rng.integers(0, 3, INPUT_SHAPE[0]),
        }
        state, _ = step(state, strategy.put_batch(batch))
    after = jax.device_get(state)
    for name, leaf in transfer.flatten({"params": after.params}).items():
        old = transfer.flatten({"params": pretrained["params"]})[name]
        if name.startswith("params/head/"):
            assert not np.array_equal(leaf, old), name
        else:
            np.testing.assert_array_equal(leaf, old, err_msg=name)
    jax.tree.map(np.testing.assert_array_equal, after.batch_stats, pretrained["batch_stats"])


def test_batch_norm_runs_in_inference_mode():
    frozen, state = frozen_state(("head/.*",))
    images = jax.random.normal(jax.random.key(1), INPUT_SHAPE)
    variables = state.variables()
    in_training, _ = frozen.apply(variables, images, train=True, mutable=["batch_stats"])
    evaluated = frozen.apply(variables, images, train=False)
    np.testing.assert_array_equal(in_training, evaluated)
    unwrapped, _ = frozen.model.apply(variables, images, train=True, mutable=["batch_stats"])
    assert not np.allclose(unwrapped, evaluated)  # the batch's statistics would differ


def test_no_gradient_reaches_frozen_parameters():
    frozen, state = frozen_state(("head/.*",))
    images = jax.random.normal(jax.random.key(1), INPUT_SHAPE)

    def loss(params):
        return jnp.sum(frozen.apply({**state.variables(), "params": params}, images, train=True))

    for name, grad in transfer.flatten({"params": jax.grad(loss)(state.params)}).items():
        assert np.any(grad) == name.startswith("params/head/"), name


def test_a_model_frozen_twice_is_one_model():
    # The compiled step binds the frozen model: wrapping it again must give an equal one.
    model = models.create("resnet18", num_classes=3, **SMALL)
    once = transfer.freeze_model(model, ("head/.*",))
    assert transfer.freeze_model(once, ("head/.*",)) == once
    assert transfer.freeze_model(model, ("head/.*",)) == once


def test_nothing_frozen_keeps_optimizer_and_model():
    tx = adamw()
    assert transfer.freeze(tx, ()) is tx
    model, _ = frozen_state(())
    assert not isinstance(model, transfer.FrozenModel)


def test_pattern_matching_nothing_is_an_error():
    with pytest.raises(transfer.TransferError, match=r"\['haed/\.\*'\] match no parameter"):
        frozen_state(("haed/.*",))


def test_several_patterns():
    _, state = frozen_state(("stage2/.*", "head/.*"))
    trainable = [
        leaf.size
        for name, leaf in transfer.flatten({"params": state.params}).items()
        if name.startswith(("params/stage2/", "params/head/"))
    ]
    assert sizes(state.opt_state) == sorted([1] + 2 * trainable)
