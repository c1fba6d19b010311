"""U-Net's auxiliary heads (deep supervision) and the training step's use of their outputs.

The heads' logits are checked against a 1x1 convolution of the decoder's own feature maps
written in numpy, their extra parameters against a count by hand, and the step's loss against
the task's loss on each output computed outside the step.
"""

import functools

import jax
import numpy as np
import optax
import pytest

from jaxconv import models, tasks
from jaxconv.train import state as state_lib
from jaxconv.train import step as step_lib

CLASSES = 3
SHAPE = (2, 16, 16, 1)


def unet(heads, **options):
    return models.create(
        "unet_same", num_classes=CLASSES, depth=3, width=4, auxiliary_heads=heads, **options
    )


def images(seed=0):
    return np.random.default_rng(seed).normal(size=SHAPE).astype(np.float32)


def init(model):
    # Jitted, with 'rbg' keys: initialisers compile several times faster than op by op.
    return jax.jit(lambda: model.init(jax.random.key(0, impl="rbg"), images(), train=False))()


@pytest.fixture(scope="module")
def sown():
    """Variables, output, auxiliary outputs and feature maps of a depth-3 U-Net with 2 heads."""
    model = unet(2)
    variables = init(model)
    variables = {k: variables[k] for k in ("params", "batch_stats")}
    output, collections = model.apply(
        variables, images(1), train=False, mutable=["auxiliary_outputs", "intermediates"]
    )
    auxiliary = collections["auxiliary_outputs"]["logits"]
    feature_maps = collections["intermediates"]["feature_maps"][0]
    return variables, output, auxiliary, feature_maps


def test_heads_predict_the_output_shape_from_the_coarsest_decoder_levels(sown):
    variables, output, auxiliary, feature_maps = sown
    assert output.shape == (*SHAPE[:3], CLASSES)
    assert [a.shape for a in auxiliary] == [output.shape, output.shape]
    # decoder1 works at 1/4 of the output's resolution, decoder2 at 1/2.
    for head, (level, factor) in enumerate((("decoder1", 4), ("decoder2", 2)), start=1):
        features = np.asarray(feature_maps[level], np.float64)
        assert features.shape[1] * factor == SHAPE[1]
        params = variables["params"][f"auxiliary{head}"]
        kernel = np.asarray(params["kernel"], np.float64)[0, 0]  # (channels, classes)
        coarse = features @ kernel + np.asarray(params["bias"], np.float64)
        block = np.ones((1, factor, factor, 1))
        expected = np.kron(coarse, block)  # each coarse pixel repeated over its block
        np.testing.assert_allclose(auxiliary[head - 1], expected, rtol=1e-5, atol=1e-5)


def test_heads_add_only_their_own_parameters_and_leave_the_output_alone(sown):
    variables, output, _, _ = sown
    plain = unet(0)
    plain_params = init(plain)["params"]
    # By hand: decoder1 has 16 channels, decoder2 8; each head is a 1x1 convolution to 3
    # classes with a bias.
    extra = (16 * CLASSES + CLASSES) + (8 * CLASSES + CLASSES)
    assert state_lib.count_parameters(variables["params"]) == (
        state_lib.count_parameters(plain_params) + extra
    )
    shared = {k: v for k, v in variables["params"].items() if not k.startswith("auxiliary")}
    plain_output = plain.apply(
        {"params": shared, "batch_stats": variables["batch_stats"]}, images(1), train=False
    )
    np.testing.assert_allclose(plain_output, output, rtol=0, atol=0)


@pytest.mark.parametrize("heads", [-1, 3, 5])
def test_more_heads_than_coarse_decoder_levels_is_an_error(heads):
    with pytest.raises(ValueError, match="use 0 to 2"):
        unet(heads).init(jax.random.key(0), images(), train=False)


def test_heads_need_same_padding():
    model = models.create("unet", num_classes=2, depth=2, width=4, auxiliary_heads=1)
    with pytest.raises(ValueError, match="needs padding 'SAME'"):
        model.init(jax.random.key(0), np.zeros((1, 44, 44, 1), np.float32), train=False)


def _model_state_and_batch(heads):
    model = unet(heads)
    key = jax.random.key(3, impl="rbg")
    state = jax.jit(lambda: state_lib.create(model, optax.sgd(0.1), SHAPE, key))()
    labels = np.random.default_rng(2).integers(0, CLASSES, SHAPE[:3])
    return model, state, {"image": images(4), "label": labels}


@pytest.mark.parametrize("weight", [0.0, 0.4])
def test_training_loss_adds_the_weighted_task_loss_of_each_auxiliary_output(weight):
    model, state, batch = _model_state_and_batch(heads=2)
    loss_fn = tasks.get("segmentation").loss_and_metrics
    task_loss = jax.jit(lambda logits: loss_fn(logits, batch)[0])
    step = jax.jit(
        functools.partial(
            step_lib.train_step,
            model=model,
            loss_and_metrics=loss_fn,
            auxiliary_loss_weight=weight,
        )
    )
    # The same forward pass outside the step: the output's and the heads' task losses.
    forward = functools.partial(
        model.apply, train=True, mutable=["batch_stats", "auxiliary_outputs"]
    )
    output, collections = jax.jit(forward)(state.variables(), batch["image"])
    main = float(task_loss(output))
    auxiliary = [float(task_loss(a)) for a in collections["auxiliary_outputs"]["logits"]]
    new_state, metrics = step(state, batch)
    mean = {
        name: float(total / count) for name, (total, count) in metrics.items() if total.ndim == 0
    }
    np.testing.assert_allclose(mean["auxiliary_loss"], sum(auxiliary), rtol=1e-5)
    # The step's reported "loss" is the output's per-pixel cross-entropy alone.
    np.testing.assert_allclose(mean["loss"], main, rtol=1e-5)
    moved = {
        name: not np.allclose(new_state.params[name]["kernel"], state.params[name]["kernel"])
        for name in ("auxiliary1", "auxiliary2", "head")
    }
    # An auxiliary head learns only from its own loss; the output's head learns either way.
    assert moved == {"auxiliary1": weight > 0, "auxiliary2": weight > 0, "head": True}


def test_without_heads_the_step_reports_no_auxiliary_loss():
    model, state, batch = _model_state_and_batch(heads=0)
    loss_fn = tasks.get("segmentation").loss_and_metrics
    train_step = functools.partial(step_lib.train_step, model=model, loss_and_metrics=loss_fn)
    _, metrics = jax.jit(train_step)(state, batch)
    assert "auxiliary_loss" not in metrics
