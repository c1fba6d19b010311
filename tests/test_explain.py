"""Grad-CAM and saliency against hand computations on a model whose answer is known."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import explain, models
from jaxconv.errors import ConfigError


class Halves(nn.Module):
    """Channel 0: the image's left half, channel 1: its right half (zeros elsewhere)."""

    @nn.compact
    def __call__(self, x):
        left = (jnp.arange(x.shape[2]) < x.shape[2] // 2)[None, None, :, None]
        return jnp.concatenate([x * left, x * ~left], axis=-1)


class LooksLeftOrRight(nn.Module):
    """Class 0's logit sums the left half's map, class 1's twice the right half's."""

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        maps = Halves(name="stage1")(x)
        self.sow("intermediates", "feature_maps", {"stage1": maps})
        return jnp.stack([maps[..., 0].sum(axis=(1, 2)), 2 * maps[..., 1].sum(axis=(1, 2))], -1)


IMAGES = jnp.asarray(np.random.default_rng(0).uniform(0.1, 1.0, (2, 6, 8, 1)), jnp.float32)
LEFT = np.arange(8) < 4


@pytest.mark.parametrize("cls, side", [(0, LEFT), (1, ~LEFT)])
def test_grad_cam_lights_exactly_the_half_the_class_reads(cls, side):
    model = LooksLeftOrRight()
    maps, chosen = explain.grad_cam(model, {}, IMAGES, "stage1", classes=[cls, cls])
    # By hand: d y_c / d A_k is 1 (class 0) or 2 (class 1) on channel k = c and 0 on the other,
    # so the weights are (1, 0) or (0, 2) and the map is ReLU(A_c) (times 2), scaled to [0, 1].
    expected = np.asarray(IMAGES[..., 0]) * side[None, None, :]
    expected /= expected.reshape(2, -1).max(axis=1)[:, None, None]
    np.testing.assert_allclose(maps, expected, rtol=1e-6, atol=1e-7)
    assert list(chosen) == [cls, cls]


def test_saliency_is_the_input_gradient():
    maps, chosen = explain.saliency(LooksLeftOrRight(), {}, IMAGES)
    assert list(chosen) == [1, 1]  # twice the right half outweighs the left
    np.testing.assert_array_equal(maps, np.broadcast_to(~LEFT, (2, 6, 8)).astype(np.float32))


def test_grad_cam_reads_a_real_models_stage_and_names_missing_ones():
    model = models.create("resnet8", num_classes=3)
    images = jnp.asarray(np.random.default_rng(1).normal(size=(2, 16, 16, 3)), jnp.float32)
    variables = jax.jit(lambda: model.init(jax.random.PRNGKey(0), images, train=False))()
    assert explain.stages(model, variables, images) == ["stem", "stage1", "stage2", "stage3"]
    maps, _ = explain.grad_cam(model, variables, images, "stage3")
    assert maps.shape == (2, 16, 16) and 0 <= maps.min() and maps.max() <= 1
    with pytest.raises(ConfigError, match="no submodule 'stage9'.*stage3"):
        explain.grad_cam(model, variables, images, "stage9")
