"""Every experiment config runs a couple of training steps (a 'runlocal' smoke test).

Each experiment is shrunk by overrides (tiny steps, batches and data) but keeps its model
family, task, data pipeline and optimizer. Catalog datasets run on `tfds.testing.mock_data`.
"""

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxconv.configs import loading
from jaxconv.data import fashion_mnist, source
from jaxconv.train import loop

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHORT = {
    "num_train_steps": "2",
    "batch_size": "8",
    "eval_batch_size": "8",
    "num_eval_steps": "2",
    "log_every_steps": "1",
    "eval_every_steps": "2",
    "checkpoint_every_steps": "2",
    # Measuring each shape's convolution formulations costs more than two steps; the planned
    # path is tested in tests/cpu and through launch.py (tests/test_launch.py).
    "fast_conv": "False",
}
MOCK = {"data.in_memory": "False", "data.image_size": "32"}

# experiment (with variant) -> its own shrinking overrides.
EXPERIMENTS = {
    "lenet5_mnist.py": {},
    "mlp_mnist.py:hidden=1": {},
    "mlp_mnist.py:hidden=2,dataset=fashion_mnist": {},
    # ResNet-8 keeps the family's blocks and shortcuts at a third of ResNet-20's compile time.
    "resnet_fashion.py:depth=20": {"model.name": "resnet8"},
    "resnet_fashion.py:depth=20,plain=True": {"model.name": "plain8"},
    "unet_scattered_digits.py": {
        "data.num_train_examples": "64",
        "data.num_test_examples": "8",
        "model.depth": "2",
        "model.width": "4",
        "model.auxiliary_heads": "1",  # the one decoder level coarser than the output
    },
    "unet_denoise.py": {
        "data.num_train_examples": "64",
        "data.test_tile_size": "64",
        "model.width": "4",
        "data.patch_size": "32",
    },
    "dncnn_denoise.py": {
        "data.num_train_examples": "64",
        "data.test_tile_size": "64",
        "model.depth": "3",
        "model.width": "4",
    },
    # Mock trimaps hold random bytes, not the classes 0-2: their losses are not finite.
    "unet_oxford_pets.py": {
        **MOCK,
        "model.depth": "2",
        "model.width": "4",
        "on_nonfinite": "skip",
        "max_skipped_share": "1.0",
    },
    "imagenet.py:model=resnet18": {
        **MOCK,
        "data.eval_split": "test",
        "best_metric": "test_accuracy",
    },
    "imagenet.py:model=alexnet": {
        **MOCK,
        "data.eval_split": "test",
        "best_metric": "test_accuracy",
        "data.image_size": "63",
        "parallel.shard_params": "True",  # 61M parameters: not replicated 8 times
    },
    "transfer_fashion_to_digits.py:budget=10,mode=scratch": {"model.name": "resnet8"},
    # transfer.source is set by the test to a two-step run of the scratch variant.
    "transfer_fashion_to_digits.py:budget=10,mode=finetune": {"model.name": "resnet8"},
}
CATALOG = ("unet_oxford_pets", "imagenet")


def test_every_experiment_is_covered():
    files = {p.name for p in (ROOT / "experiments").glob("*.py")} - {"count_coins.py"}
    assert files <= {name.split(":")[0] for name in EXPERIMENTS}


def _read_one_by_one(self, indices):
    return [self[int(index)] for index in indices]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_trains_a_few_steps(experiment, tmp_path, monkeypatch):
    config = loading.load(str(ROOT / "experiments" / experiment))
    if config.data.name == "fashion_mnist" and not fashion_mnist.find_files():
        pytest.skip("Fashion-MNIST not installed (make data)")
    for key, value in {**SHORT, **EXPERIMENTS[experiment]}.items():
        loading.override(config, key, value)
    if config.transfer.source:
        pretrained = loading.load(
            str(ROOT / "experiments" / experiment.replace("mode=finetune", "mode=scratch"))
        )
        for key, value in {**SHORT, **EXPERIMENTS[experiment]}.items():
            loading.override(pretrained, key, value)
        loop.run(pretrained, tmp_path / "pretrained")
        loading.override(config, "transfer.source", f"checkpoint:{tmp_path / 'pretrained'}")
    if experiment.startswith(CATALOG):
        # TFDS 4.9.10's mock data source breaks on batched reads; real sources do not.
        monkeypatch.setattr(source.RecordSource, "__getitems__", _read_one_by_one)
        with tfds.testing.mock_data(num_examples=16, policy=tfds.testing.MockPolicy.USE_CODE):
            summary = loop.run(config, tmp_path)
    else:
        summary = loop.run(config, tmp_path)
    assert summary["steps"] == 2
    assert list(tmp_path.rglob("summary.json"))
    if config.best_metric:  # the metric the best checkpoint is kept by is evaluated
        assert np.isfinite(summary[config.best_metric]) or config.on_nonfinite == "skip"
