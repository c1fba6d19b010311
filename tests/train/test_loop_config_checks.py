"""Settings that cannot work stop before anything compiles, naming the fix."""

import pytest

from jaxconv.configs import base
from jaxconv.models.from_config import build_model
from jaxconv.train import parallel


def test_per_device_batch_statistics_need_pmap():
    config = base.get_config()
    config.parallel.sync_batch_norm = False
    with pytest.raises(ValueError, match="needs parallel.mode='pmap'"):
        parallel.make_strategy(config)
    config.parallel.mode = "pmap"
    assert isinstance(parallel.make_strategy(config), parallel.PmapStrategy)


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_compute_dtypes_without_loss_scaling_are_refused(dtype):
    config = base.get_config()
    config.model.dtype = dtype
    with pytest.raises(ValueError, match="bfloat16"):
        build_model(config, 10)


def test_bfloat16_compute_keeps_float32_parameters():
    import jax
    import jax.numpy as jnp

    config = base.get_config()
    config.model.dtype = "bfloat16"
    model = build_model(config, 10)
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), train=False)
    )
    assert {leaf.dtype for leaf in jax.tree.leaves(shapes["params"])} == {jnp.dtype("float32")}
    out = jax.eval_shape(
        lambda variables: model.apply(variables, jnp.zeros((2, 28, 28, 1)), train=False), shapes
    )
    assert out.dtype == jnp.bfloat16
