"""One training step: a non-finite gradient leaves the state as it was, even under a finite loss."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxconv.train import state as state_lib
from jaxconv.train import step


class SquareRoots(nn.Module):
    """Outputs the square roots of its parameters (the images are ignored): at a parameter of
    0 the output is 0 and finite, its derivative 1 / (2 sqrt(0)) infinite."""

    start: float

    @nn.compact
    def __call__(self, images, train: bool = False):
        roots = self.param("roots", lambda key: jnp.array([self.start, 4.0], jnp.float32))
        return jnp.sqrt(roots)


def output_sum(outputs, batch):
    total = jnp.sum(outputs)
    return total, {"loss": (total, jnp.ones((), jnp.float32))}


def one_step(start: float):
    model = SquareRoots(start)
    state = state_lib.create(model, optax.sgd(0.1), (1, 2, 2, 1), jax.random.PRNGKey(0))
    batch = {"image": jnp.zeros((1, 2, 2, 1)), "label": jnp.zeros((1,), jnp.int32)}
    train_step = functools.partial(step.train_step, model=model, loss_and_metrics=output_sum)
    new_state, metrics = jax.jit(train_step)(state, batch)
    return state, new_state, jax.device_get(metrics)


def test_an_infinite_gradient_under_a_finite_loss_is_not_applied():
    state, new_state, metrics = one_step(start=0.0)
    assert np.isfinite(metrics["loss"][0])  # sqrt(0) + sqrt(4)
    assert metrics["nonfinite"] == (1.0, 1.0)
    assert metrics["grad_norm"][1] == 0  # not counted in the logged mean
    np.testing.assert_array_equal(new_state.params["roots"], state.params["roots"])
    assert new_state.step == 1


def test_a_finite_gradient_is_applied_and_its_norm_reported():
    state, new_state, metrics = one_step(start=1.0)
    assert metrics["nonfinite"] == (0.0, 1.0)
    gradient = np.array([0.5 / 1.0, 0.5 / 2.0])  # d sqrt(x) / dx = 1 / (2 sqrt(x))
    assert metrics["grad_norm"][0] == pytest.approx(np.linalg.norm(gradient))
    np.testing.assert_allclose(new_state.params["roots"], [1.0, 4.0] - 0.1 * gradient, rtol=1e-6)
