"""A StableHLO export runs where neither flax nor jaxconv is importable, and gives jaxconv's
outputs; its batch, and its height and width where the model allows, take any size."""

import json
import subprocess
import sys

import numpy as np
import pytest

from jaxconv.data.pipeline import normalise
from jaxconv.workdir import export, restore

# Run in a fresh interpreter: flax, optax and jaxconv refuse to import, jax and numpy do.
ISOLATED = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("flax", "optax", "orbax", "jaxconv"):
            raise ImportError("not available here: " + name)
sys.meta_path.insert(0, Refuse())
sys.path.insert(0, sys.argv[1])
import numpy as np
from load import load
model = load(sys.argv[1])
np.save(sys.argv[3], model(np.load(sys.argv[2])))
"""


def run_isolated(folder, images, tmp_path):
    np.save(tmp_path / "images.npy", images)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            ISOLATED,
            str(folder),
            str(tmp_path / "images.npy"),
            str(tmp_path / "outputs.npy"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(tmp_path / "outputs.npy")


def jaxconv_outputs(workdir, images):
    card = restore.model_card(workdir)
    run = restore.load_run(workdir)
    normalised = normalise(images, card["mean"], card["std"])
    return np.asarray(run.model.apply(run.variables, normalised, train=False))


def test_a_classifier_exported_to_stablehlo_matches_jaxconv_without_flax(
    saved_digits_run, tmp_path
):
    out = tmp_path / "model"
    export.export_stablehlo(saved_digits_run, out)
    card = json.loads((out / "model.json").read_text())
    assert card["input"]["polymorphic"] == ["batch"]  # the MLP flattens a fixed size
    assert card["class_names"] == [str(k) for k in range(10)]
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 1)).astype(np.uint8)
    got = run_isolated(out, images, tmp_path)
    np.testing.assert_allclose(got, jaxconv_outputs(saved_digits_run, images), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [(32, 32), (24, 40)])
def test_a_fully_convolutional_export_takes_any_image_size(denoising_run, tmp_path, size):
    out = tmp_path / "model"
    export.export_stablehlo(denoising_run, out)
    card = json.loads((out / "model.json").read_text())
    assert card["input"]["polymorphic"] == ["batch", "height", "width"]
    images = np.random.default_rng(1).integers(0, 256, (3, *size, 1)).astype(np.uint8)
    got = run_isolated(out, images, tmp_path)
    assert got.shape == (3, *size, 1)
    np.testing.assert_allclose(got, jaxconv_outputs(denoising_run, images), rtol=1e-5, atol=1e-5)


def test_the_jaxconv_export_carries_the_model_card(saved_digits_run, tmp_path):
    export.export_run(saved_digits_run, tmp_path / "model")
    card = restore.model_card(tmp_path / "model")
    assert card == {**restore.model_card(saved_digits_run), "step": 5}
    assert restore.load_run(tmp_path / "model").model.num_classes == 10
