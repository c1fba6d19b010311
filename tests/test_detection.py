"""Counting the coins of skimage.data.coins() against hand-checked centres."""

import json
import pathlib
import subprocess
import sys

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import skimage.data

from jaxconv import detection, ops

ROOT = pathlib.Path(__file__).resolve().parents[1]
REFERENCE_PATH = detection.PACKAGED_REFERENCE
SETTINGS = {
    "radii": tuple(range(12, 42, 2)),
    "surround": 1.5,
    "threshold": 0.15,
    "min_distance": 15,
    "padding": "symmetric",
    "match_tolerance": 6.0,
    "reference_path": str(REFERENCE_PATH),
}


@pytest.fixture(scope="module")
def reference():
    return np.array(json.loads(REFERENCE_PATH.read_text())["centres"])


def test_finds_all_24_coins_without_false_detections(reference):
    image = jnp.asarray(skimage.data.coins(), jnp.float32) / 255.0
    found = detection.count_coins(
        image, SETTINGS["radii"], SETTINGS["threshold"], SETTINGS["min_distance"]
    )
    assert len(reference) == 24
    matched = detection.match(found.centres, reference[:, :2], SETTINGS["match_tolerance"])
    assert len(found.scores) == 24
    assert len(matched.pairs) == 24
    assert (matched.precision, matched.recall) == (1.0, 1.0)
    # Each matched radius is the reference rim's to within one step of the radii grid.
    for detected, known in matched.pairs:
        assert abs(found.radii[detected] - reference[known, 2]) <= 2.5


def test_run_writes_summary_and_figure(tmp_path):
    config = ml_collections.ConfigDict({"detection": SETTINGS})
    summary = detection.run(config, tmp_path)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["num_detections"] == summary["num_detections"] == 24
    assert written["precision"] == written["recall"] == 1.0
    assert (tmp_path / "coins.png").stat().st_size > 10_000


def test_detector_response_is_the_disk_contrast():
    radius, contrast = 6, 0.3
    detector = detection.disk_detector(radius, surround=1.5, size=21)
    assert float(detector.sum()) == pytest.approx(0.0, abs=1e-6)
    assert float(jnp.maximum(detector, 0).sum()) == pytest.approx(1.0)
    image = 0.2 + contrast * np.asarray(ops.disk(radius, size=41))
    found = detection.count_coins(image, radii=(4, 6, 8), threshold=0.1, min_distance=5)
    np.testing.assert_array_equal(found.centres, [[20, 20]])
    assert found.radii.tolist() == [6]
    assert found.scores[0] == pytest.approx(contrast, rel=1e-5)


def test_match_pairs_one_to_one_within_tolerance():
    found = np.array([[0.0, 0.0], [10.0, 0.0], [10.5, 0.0], [50.0, 50.0]])
    reference = np.array([[0.0, 1.0], [10.2, 0.0], [30.0, 30.0]])
    matched = detection.match(found, reference, tolerance=2.0)
    assert sorted(matched.pairs) == [(0, 0), (1, 1)]
    assert matched.precision == pytest.approx(2 / 4)
    assert matched.recall == pytest.approx(2 / 3)


def test_launch_counts_the_coins(tmp_path):
    """The experiment as a user runs it, with its own config."""
    result = subprocess.run(
        [sys.executable, "launch.py", "--config", "experiments/count_coins.py"]
        + ["--workdir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "24 detections, 24 of 24 reference coins found" in result.stdout
    assert "precision 1.000, recall 1.000" in result.stdout
    assert (tmp_path / "coins.png").is_file() and (tmp_path / "summary.json").is_file()
