"""`launch.py predict`'s work: a trained model on image files of any size, format and mode."""

import json

import numpy as np
import pytest
from PIL import Image

from jaxconv import predict
from jaxconv.data.pipeline import normalise
from jaxconv.workdir import restore


def digit_images(folder):
    """An RGBA PNG, a greyscale JPEG, a corrupt JPEG and a text file in a folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (20, 24, 4)).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "colour.png")
    Image.fromarray(rng.integers(0, 256, (16, 16)).astype(np.uint8)).save(folder / "grey.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def expected_probabilities(workdir, path):
    """The model applied by hand: PIL's grey conversion and bilinear resize, then softmax."""
    card = restore.model_card(workdir)
    run = restore.load_run(workdir)
    with Image.open(path) as image:
        grey = image.convert("L").resize((8, 8), Image.BILINEAR)
    pixels = np.asarray(grey)[None, :, :, None]
    logits = np.asarray(run.model.apply(run.variables, normalise(pixels, 0.0, 1.0), train=False))
    assert card["mean"] == 0.0 and card["std"] == 1.0
    exp = np.exp(logits[0] - logits[0].max())
    return exp / exp.sum()


def test_a_folder_with_a_corrupt_file_writes_the_good_ones_and_names_the_bad(
    saved_digits_run, tmp_path
):
    folder = digit_images(tmp_path / "images")
    summary = predict.predict(saved_digits_run, [folder], tmp_path / "out", top_k=3)
    assert summary.predicted == 2
    assert [(p.rsplit("/", 1)[-1], "cannot be read" in why) for p, why in summary.skipped] == [
        ("broken.jpg", True)
    ]
    written = json.loads((tmp_path / "out" / "predictions.json").read_text())
    by_name = {r["path"].rsplit("/", 1)[-1]: r["top"] for r in written["predictions"]}
    assert set(by_name) == {"colour.png", "grey.jpg"}
    for name, top in by_name.items():
        expected = expected_probabilities(saved_digits_run, folder / name)
        assert [t["class"] for t in top] == list(np.argsort(-expected, kind="stable")[:3])
        np.testing.assert_allclose(
            [t["probability"] for t in top], np.sort(expected)[::-1][:3], rtol=1e-5
        )
    lines = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert lines[0].startswith("path,class_1,name_1,probability_1,class_2")
    assert len(lines) == 3
    assert written["skipped"][0]["path"].endswith("broken.jpg")


def test_a_glob_and_a_missing_path(saved_digits_run, tmp_path):
    folder = digit_images(tmp_path / "images")
    summary = predict.predict(
        saved_digits_run, [str(folder / "*.png"), str(tmp_path / "nowhere.png")], tmp_path / "out"
    )
    assert summary.predicted == 1
    assert any("nowhere.png" in path for path, _ in summary.skipped)


def test_mirroring_averages_the_image_and_its_mirror(saved_digits_run, tmp_path):
    image = np.random.default_rng(3).integers(0, 256, (8, 8)).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    Image.fromarray(image[:, ::-1].copy()).save(tmp_path / "b.png")
    predict.predict(
        saved_digits_run,
        [tmp_path / "a.png", tmp_path / "b.png"],
        tmp_path / "out",
        tta=True,
        top_k=10,
    )
    records = json.loads((tmp_path / "out" / "predictions.json").read_text())["predictions"]
    a, b = ({t["class"]: t["probability"] for t in r["top"]} for r in records)
    # The average of softmaxes of x and its mirror is the same for the mirrored image.
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-5)


def test_segmentation_masks_come_back_at_the_images_own_size(segmentation_run, tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (50, 70)).astype(np.uint8)).save(tmp_path / "wide.png")
    summary = predict.predict(segmentation_run, [tmp_path / "wide.png"], tmp_path / "out")
    mask = np.asarray(Image.open(tmp_path / "out" / "wide_mask.png"))
    overlay = np.asarray(Image.open(tmp_path / "out" / "wide_overlay.png"))
    assert mask.shape == (50, 70) and overlay.shape == (50, 70, 3)
    assert mask.max() < restore.model_card(segmentation_run)["num_outputs"]
    assert len(summary.written) == 2


def test_denoising_keeps_the_size_and_scores_against_a_reference(denoising_run, tmp_path):
    rng = np.random.default_rng(0)
    clean = rng.integers(60, 200, (45, 61)).astype(np.uint8)
    noisy = np.clip(clean + rng.normal(0, 10, clean.shape), 0, 255).astype(np.uint8)
    (tmp_path / "noisy").mkdir()
    (tmp_path / "clean").mkdir()
    Image.fromarray(noisy).save(tmp_path / "noisy" / "photo.png")
    Image.fromarray(clean).save(tmp_path / "clean" / "photo.png")
    predict.predict(
        denoising_run, [tmp_path / "noisy"], tmp_path / "out", reference=tmp_path / "clean"
    )
    restored = np.asarray(Image.open(tmp_path / "out" / "photo_restored.png"))
    assert restored.shape == (45, 61)
    (scores,) = json.loads((tmp_path / "out" / "metrics.json").read_text())["images"]
    from skimage.metrics import peak_signal_noise_ratio

    # The untrained DnCNN's head starts at zero: it predicts no noise, so it returns its input.
    assert np.abs(restored.astype(int) - noisy.astype(int)).max() <= 1
    assert scores["psnr"] == pytest.approx(peak_signal_noise_ratio(clean, restored), abs=0.05)
