"""The report of a real (tiny) LeNet-5 run: every section, images that decode, no network."""

import os
import pathlib
import re
import subprocess
import sys

import pytest
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
OVERRIDES = {"num_train_steps": "10", "batch_size": "16", "eval_batch_size": "200"}
# 7 inches at 150 dpi: a page's text width. The confusion matrix is 5.2 x 4.6 inches.
PAGE_WIDTH = 1050
CONFUSION_SIZE = (780, 690)
SECTIONS = (
    "summary",
    "curves",
    "config",
    "model",
    "confusion",
    "mistakes",
    "explanations",
    "kernels",
)


def launch(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "launch.py", *args],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory) -> pathlib.Path:
    """A 10-step run through launch.py, which draws the report itself when the run ends."""
    workdir = tmp_path_factory.mktemp("report") / "lenet5"
    overrides = [f"--config.{key}={value}" for key, value in OVERRIDES.items()]
    launch("--config", "experiments/lenet5_mnist.py", "--workdir", str(workdir), *overrides)
    return workdir


@pytest.fixture(scope="module")
def built(lenet_run) -> tuple[pathlib.Path, str]:
    """The report drawn again by `launch.py report`."""
    automatic = (lenet_run / "report" / "index.html").read_text()
    result = launch("report", "--workdir", str(lenet_run), "--max_examples", "200")
    index = lenet_run / "report" / "index.html"
    assert f"Report: {index}" in result.stdout
    assert section_ids(automatic) == section_ids(index.read_text())
    return index, index.read_text()


def section_ids(page: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"', page)


def test_index_is_written_in_the_report_folder(built, lenet_run):
    index, _ = built
    assert index == lenet_run / "report" / "index.html"


def test_report_contains_every_section(built):
    _, page = built
    assert set(SECTIONS) | {"feature-maps"} <= set(section_ids(page))
    assert "61,706" in page  # the model table's parameter count
    assert "model.name" in page and "lenet5" in page  # the resolved config
    assert 'class="note"' not in page  # nothing was left out


def test_html_needs_no_network(built):
    _, page = built
    links = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    assert links, "the page embeds its figures"
    assert not [link for link in links if re.match(r"\w+://|//", link)]
    assert "http://" not in page and "https://" not in page
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)


def test_images_decode_at_the_expected_sizes(built, lenet_run):
    _, page = built
    paths = sorted((lenet_run / "report").glob("*.png"))
    names = {path.stem for path in paths}
    assert names == {
        "training_curves",
        "confusion_matrix",
        "confident_mistakes",
        "grad_cam",
        "kernels",
        "feature_maps",
    }
    assert page.count("<img ") == len(paths)
    for path in paths:
        with Image.open(path) as image:
            image.load()
            width, height = image.size
        if path.stem == "confusion_matrix":
            assert (width, height) == CONFUSION_SIZE
        else:
            assert width == PAGE_WIDTH, path.name
            assert 150 <= height <= 2 * PAGE_WIDTH, path.name


def test_figure_heights_follow_their_rows(lenet_run):
    """LeNet's 6 kernels fill one row; the feature maps take three (the input, conv1, conv2:
    the flattened features are no picture); the five curve panels three rows of two."""
    heights = {p.stem: Image.open(p).size[1] for p in (lenet_run / "report").glob("*.png")}
    assert heights["kernels"] < heights["feature_maps"] < heights["training_curves"]


def test_an_exported_model_is_reported_as_its_workdir(lenet_run, tmp_path):
    from jaxconv import report
    from jaxconv.workdir import export

    exported = tmp_path / "model"
    export.export_run(lenet_run, exported)
    page = report.build(exported, max_examples=100).read_text()
    assert {"config", "model", "confusion", "kernels"} <= set(section_ids(page))
    assert "as exported" in page
