"""The accelerator benchmark's step is jaxconv's training step in the dtype asked for, and its
row follows from the steps it timed."""

import importlib.util
import pathlib
import sys

import jax.numpy as jnp
import pytest

from jaxconv import models

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def accelerator():
    sys.path.insert(0, str(BENCHMARKS))  # it imports its sibling train_throughput
    try:
        spec = importlib.util.spec_from_file_location(
            "accelerator", BENCHMARKS / "accelerator_throughput.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_a_small_resnet_trains_in_bfloat16_and_its_row_adds_up(accelerator, monkeypatch):
    dtypes = []
    create = models.create

    def recording_create(name, **options):
        model = create(name, **options)
        dtypes.append(model.dtype)
        return model

    monkeypatch.setattr(models, "create", recording_create)
    row = accelerator.measure("resnet18", 32, 2, "bfloat16", seconds=0.01, planned=False)
    assert dtypes == [jnp.bfloat16]
    assert row["steps"] >= 1 and row["img_s"] > 0
    assert row["model"] == "resnet18" and row["batch"] == 2 and row["dtype"] == "bfloat16"
    model = create("resnet18", num_classes=1000)
    flops = models.summary(model, (32, 32, 3)).flops  # one image's forward pass
    assert row["tflop_s"] == pytest.approx(row["img_s"] * 3 * flops / 1e12)
