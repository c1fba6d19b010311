"""The TensorBoard prediction images, against hand-made expectations."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv import models, pictures
from jaxconv.configs import base
from jaxconv.data.source import ArraySource
from jaxconv.train import previews
from jaxconv.workdir.writers import MetricWriter


def test_classification_images_frame_right_green_and_wrong_red():
    batch = {"image": np.zeros((2, 4, 4, 1), np.float32), "label": np.array([1, 0])}
    logits = np.array([[0.0, 5.0], [0.0, 5.0]])  # right, then wrong
    grid = previews.prediction_images("classification", batch, logits)["predictions/classification"]
    assert grid.shape == (8, 8 + 2 + 8, 3)  # two framed 8x8 images, 2 pixels apart
    np.testing.assert_allclose(grid[0, 0], pictures.CORRECT)
    np.testing.assert_allclose(grid[0, 10], pictures.WRONG)
    assert grid.min() >= 0 and grid.max() <= 1


def test_denoising_images_subtract_the_predicted_noise():
    clean = np.full((1, 4, 4, 1), 0.5, np.float32)
    noise = np.full_like(clean, 0.25)
    batch = {"image": clean + noise, "target": clean}
    grid = previews.prediction_images("denoising", batch, noise, predicts_noise=True)
    row = grid["predictions/denoising"]
    assert row.shape == (4, 3 * 4 + 2 * 2, 3)
    np.testing.assert_allclose(row[:, 6:10], 0.5)  # the denoised panel equals the clean one


def test_segmentation_images_crop_to_a_smaller_output():
    batch = {"image": np.ones((2, 8, 8, 1), np.float32), "label": np.ones((2, 8, 8), np.int32)}
    logits = np.zeros((2, 4, 4, 3), np.float32)
    grid = previews.prediction_images("segmentation", batch, logits, num_classes=3)
    assert grid["predictions/segmentation"].shape == (2 * 4 + 2, 3 * 4 + 2 * 2, 3)


def test_prediction_images_reach_tensorboard(tmp_path):
    config = base.get_config()
    images_uint8 = np.random.default_rng(0).integers(0, 255, (4, 28, 28, 1), dtype=np.uint8)
    source = ArraySource(images_uint8, np.arange(4) % 10, num_classes=10)
    model = models.create("lenet5", num_classes=10)
    init = jax.jit(lambda rng: model.init(rng, jnp.zeros((1, 28, 28, 1)), train=False))
    variables = init(jax.random.PRNGKey(0))
    drawn = previews.PredictionImages(config, model, source, count=4)(variables)
    assert drawn["predictions/classification"].shape == (32, 4 * 32 + 3 * 2, 3)
    writer = MetricWriter(tmp_path)
    writer.write_images(1, drawn)
    writer.close()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
