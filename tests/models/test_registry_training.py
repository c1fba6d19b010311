"""Every model family jit-compiles and runs forward and backward on a tiny batch.

Families are exercised at reduced width or depth where the full model would only add compile and
run time; the full sizes are checked by shape in test_models_counts.py. Keys use the 'rbg'
generator, whose initialisers compile several times faster on the CPU than threefry's.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import models


def key(seed):
    return jax.random.key(seed, impl="rbg")


def train_step_outputs(model, input_shape):
    """Initialise, then run a jitted forward and backward pass in training mode."""
    images = jax.random.normal(key(1), input_shape)
    variables = jax.jit(lambda k: model.init(k, images, train=False))(key(0))
    params = variables["params"]
    state = {name: value for name, value in variables.items() if name != "params"}

    def loss(params):
        output, updates = model.apply(
            {"params": params, **state},
            images,
            train=True,
            rngs={"dropout": key(2)},
            mutable=list(state),
        )
        # Distance to 1, not to 0: a model may start at a zero output (DnCNN's head does),
        # where the square's gradient would vanish.
        return jnp.mean((output.astype(jnp.float32) - 1.0) ** 2), (output, updates)

    (value, (output, updates)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    return params, state, value, output, updates, grads


TINY = {
    "lenet5": ((2, 28, 28, 1), {}),
    "lenet5_1998": ((2, 32, 32, 1), {"conv1_padding": "VALID"}),
    "mlp": ((2, 28, 28, 1), {"hidden_sizes": (32,)}),
    "vgg11": ((2, 32, 32, 3), {"stage_widths": (4, 4, 8, 8, 8), "classifier_widths": (16, 16)}),
    "vgg13_bn": ((2, 32, 32, 3), {"stage_widths": (4, 4, 8, 8, 8), "classifier_widths": (16,)}),
    "resnet18": ((2, 32, 32, 3), {"stage_sizes": (1, 1, 1, 1), "stage_widths": (8, 8, 16, 16)}),
    "resnet50": ((2, 32, 32, 3), {"stage_sizes": (1, 1, 1, 1), "stage_widths": (4, 4, 8, 8)}),
    "resnet20": ((2, 32, 32, 3), {}),
    "plain20": ((2, 32, 32, 1), {}),
    "unet": ((1, 44, 44, 1), {"depth": 2, "width": 4}),
    "unet_same": ((2, 16, 24, 1), {"depth": 2, "width": 4, "upsampling": "bilinear"}),
    "dncnn": ((2, 12, 12, 1), {"depth": 4, "width": 8}),
}


# Covered by a sibling in the fast run: vgg13_bn (VGG), resnet20 and resnet50 (basic blocks, the
# ImageNet stem, projections), lenet5 (LeNet-5).
SLOW = {"vgg11", "resnet18", "lenet5_1998"}


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in TINY]
)
def test_forward_and_backward(name):
    input_shape, overrides = TINY[name]
    num_classes = 3
    model = models.create(name, num_classes=num_classes, **overrides)
    params, state, value, output, updates, grads = train_step_outputs(model, input_shape)
    assert np.isfinite(value)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(grads))
    head = grads["head"]["kernel"]
    assert np.any(head != 0)
    if "batch_stats" in state:
        # Training mode moves the running statistics.
        before, after = state["batch_stats"], updates["batch_stats"]
        moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), before, after)
        assert all(jax.tree.leaves(moved))


def test_alexnet_forward_and_backward_at_full_width_and_smallest_input():
    """AlexNet has no width option: the whole 61M-parameter model, on one 63x63 image."""
    model = models.create("alexnet", num_classes=3)
    params, _, value, output, _, grads = train_step_outputs(model, (1, 63, 63, 3))
    assert output.shape == (1, 3) and np.isfinite(value)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(grads))


def test_dropout_uses_the_dropout_rng_only_in_training():
    overrides = {"stage_widths": (4, 4, 4, 4, 4), "classifier_widths": (64, 64)}
    model = models.create("vgg11", num_classes=3, **overrides)
    images = jax.random.normal(key(1), (2, 32, 32, 3))
    variables = model.init(key(0), images, train=False)
    train = lambda seed: model.apply(variables, images, train=True, rngs={"dropout": key(seed)})
    assert not np.allclose(train(1), train(2))
    evaluate = model.apply(variables, images, train=False)
    np.testing.assert_array_equal(evaluate, model.apply(variables, images, train=False))


def test_compute_dtype_is_separate_from_parameter_dtype():
    model = models.create("resnet20", stage_sizes=(1, 1, 1), dtype=jnp.bfloat16)
    images = jnp.ones((2, 32, 32, 3))
    variables = model.init(key(0), images, train=False)
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    assert model.apply(variables, images, train=False).dtype == jnp.bfloat16


def test_residual_blocks_start_as_identity_and_plain_blocks_do_not():
    """Zero-initialised last batch-norm scale (Goyal et al. 2017) only where there is a skip."""
    images = jnp.ones((1, 32, 32, 3))
    residual = models.create("resnet20").init(key(0), images, train=False)["params"]
    plain = models.create("plain20").init(key(0), images, train=False)["params"]
    assert np.all(residual["stage2"]["block1"]["norm2"]["scale"] == 0)
    assert np.all(plain["stage2"]["block1"]["norm2"]["scale"] == 1)
    assert np.all(residual["stage2"]["block1"]["norm1"]["scale"] == 1)


# The sizes each family is traced at below: full models, at an input they take.
TRACE_INPUTS = {
    "lenet": (2, 28, 28, 1),
    "mlp": (2, 28, 28, 1),
    "unet_same": (1, 64, 64, 1),  # before "unet": the first matching prefix wins
    "unet": (1, 188, 188, 1),
}


@pytest.mark.parametrize("name", models.names())
def test_every_registered_model_traces_forward_and_backward(name):
    """Shapes only (no compile, no run): each full model's gradient has its parameters' tree."""
    family = next((prefix for prefix in TRACE_INPUTS if name.startswith(prefix)), None)
    input_shape = TRACE_INPUTS.get(family, (1, 64, 64, 3))
    model = models.create(name, num_classes=10)
    images = jax.ShapeDtypeStruct(input_shape, jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(key(0), x, train=False), images)
    params = variables["params"]
    state = {k: v for k, v in variables.items() if k != "params"}

    def loss(params, state, x):
        output, _ = model.apply(
            {"params": params, **state},
            x,
            train=True,
            rngs={"dropout": key(2)},
            mutable=list(state),
        )
        return jnp.mean(output.astype(jnp.float32) ** 2)

    grads = jax.eval_shape(jax.grad(loss), params, state, images)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert [g.shape for g in jax.tree.leaves(grads)] == [p.shape for p in jax.tree.leaves(params)]


def test_untrained_dncnn_estimates_no_noise_and_starts_at_hes_forward_scale():
    model = models.create("dncnn")
    image = jax.random.uniform(jax.random.key(1), (2, 24, 24, 1))
    variables = model.init(jax.random.key(0), image, train=False)
    noise = model.apply(variables, image, train=False)
    np.testing.assert_array_equal(np.asarray(noise), 0.0)
    params = variables["params"]
    # Variance 2 / fan-in (He et al.'s forward form): sqrt(2 / 9) for the 1 -> 64 stem,
    # sqrt(2 / 576) for a 64 -> 64 middle layer.
    stem, middle = params["stem"]["conv"]["kernel"], params["block7"]["conv"]["kernel"]
    assert np.std(np.asarray(stem)) == pytest.approx((2 / 9) ** 0.5, rel=0.1)
    assert np.std(np.asarray(middle)) == pytest.approx((2 / 576) ** 0.5, rel=0.05)
