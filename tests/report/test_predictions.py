"""Segmentation and denoising reports, from runs saved by hand (see conftest.py)."""

import json
import re

from PIL import Image

from jaxconv import report
from jaxconv.report import loading, run


def sections(page: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"', page)


def png_sizes(workdir) -> dict[str, tuple[int, int]]:
    sizes = {}
    for path in (workdir / "report").glob("*.png"):
        with Image.open(path) as image:
            image.load()
            sizes[path.stem] = image.size
    return sizes


def test_segmentation_report_overlays_truth_and_prediction(segmentation_run):
    page = report.build(segmentation_run).read_text()
    assert "segmentation" in sections(page)
    assert "feature-maps" in sections(page)
    sizes = png_sizes(segmentation_run)
    assert {"segmentation", "segmentation_confusion", "segmentation_iou"} <= set(sizes)
    assert sizes["segmentation"][0] == 1050
    assert "confusion" not in sections(page)  # classification's sections stay out
    assert "http://" not in page and "https://" not in page


def test_denoising_report_shows_noisy_denoised_and_clean(denoising_run):
    page = report.build(denoising_run).read_text()
    assert "denoising" in sections(page)
    assert "dB noisy" in page and "dB denoised" in page
    sizes = png_sizes(denoising_run)
    assert sizes["denoising"][0] == 1050
    assert "kernels" in sizes  # DnCNN's stem is its first convolution
    # DnCNN exposes no feature maps: the section says so rather than vanishing.
    assert "feature-maps" in sections(page)


def test_report_without_config_draws_the_curves_and_says_what_is_missing(tmp_path):
    lines = [{"step": step, "train_loss": 1.0 / step} for step in (1, 2, 3)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    page = report.build(tmp_path).read_text()
    assert sections(page) == ["summary", "curves", "model"]
    assert "config.json is missing" in page
    assert (tmp_path / "report" / "training_curves.png").exists()


def test_summary_lists_scalars_only(tmp_path):
    summary = {"test_miou": 0.25, "per_class": [0.1, 0.2], "model": "unet"}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    section = run.overview(loading.read_run(tmp_path))
    assert "test_miou" in section.body and "per_class" not in section.body
