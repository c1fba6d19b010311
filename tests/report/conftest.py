"""Runs made by hand for the report tests: config.json, one checkpoint and metrics.jsonl,
without training (the report must draw whatever state a run left)."""

import json
import pathlib

import grain
import jax
import optax
import pytest

from jaxconv import data, tasks
from jaxconv.configs import base
from jaxconv.models.from_config import build_model
from jaxconv.train import state as state_lib
from jaxconv.workdir.checkpoint import Checkpointer


def save_run(workdir: pathlib.Path, config, records: list[dict], summary: dict | None = None):
    """Writes a run of `config` with freshly initialised parameters saved at step 5."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    source = data.get_source(
        config.data.name, config.data.eval_split, config.data.data_dir, config.data
    )
    task = tasks.get(config.task, config)
    model = build_model(config, task.output_size(source))
    # Jitted: initialising op by op would compile every initializer on its own.
    create = jax.jit(
        lambda rng: state_lib.create(model, optax.sgd(0.1), (1, *source.image_shape), rng)
    )
    state = create(jax.random.PRNGKey(config.seed)).replace(step=jax.numpy.asarray(5))
    checkpointer = Checkpointer(workdir, report=lambda message: None)
    iterator = iter(grain.MapDataset.range(4).to_iter_dataset())
    checkpointer.save(state, iterator)
    checkpointer.wait()
    checkpointer.close()
    (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if summary is not None:
        (workdir / "summary.json").write_text(json.dumps(summary))
    return workdir


def records(eval_metrics: dict[str, float], steps=(1, 2, 3, 4, 5)) -> list[dict]:
    """Training records at `steps` and one evaluation record at the last step."""
    train = [
        {
            "step": step,
            "train_loss": 2.0 / step,
            "train_grad_norm": 1.0,
            "learning_rate": 0.1,
            "images_per_second": 100.0 + step,
        }
        for step in steps
    ]
    return [*train, {"step": steps[-1], **eval_metrics}]


@pytest.fixture(scope="module")
def segmentation_run(tmp_path_factory):
    """A valid-padding U-Net (its output smaller than its input) on 32x32 scattered digits."""
    config = base.get_config()
    config.task = "segmentation"
    config.model.name = "unet"
    config.model.depth = 1
    config.model.width = 4
    config.data.name = "scattered_digits"
    config.data.canvas_size = 32
    config.data.scale_range = (0.7, 1.1)
    config.data.num_train_examples = 8
    config.data.num_test_examples = 8
    metrics = {"test_loss": 1.0, "test_pixel_accuracy": 0.5, "test_iou_0": 0.4, "test_miou": 0.1}
    return save_run(tmp_path_factory.mktemp("report") / "unet", config, records(metrics))


@pytest.fixture(scope="module")
def denoising_run(tmp_path_factory):
    """A 3-layer DnCNN predicting the noise on 32x32 tiles of grey photographs."""
    config = base.get_config()
    config.task = "denoising"
    config.model.name = "dncnn"
    config.model.depth = 3
    config.model.width = 4
    config.data.name = "noisy_patches"
    config.data.test_tile_size = 32
    config.data.num_train_examples = 8
    metrics = {"test_loss": 0.01, "test_psnr": 20.0, "test_ssim": 0.5}
    return save_run(tmp_path_factory.mktemp("report") / "dncnn", config, records(metrics))


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A digits MLP run saved by hand: a report draws it in seconds."""
    workdir = tmp_path_factory.mktemp("digits") / "run"
    config = base.get_config()
    config.data.name = "digits"
    config.model.name = "mlp"
    return save_run(workdir, config, records({"test_accuracy": 0.5}))
