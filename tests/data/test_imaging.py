"""Decoding image files: damaged and oversized files are refused by name."""

import numpy as np
import pytest
from PIL import Image

from jaxconv.data import imaging
from jaxconv.errors import DataError


@pytest.mark.parametrize("pixels_over_limit", [1.5, 3.0])  # a warning, then an error in Pillow
def test_a_decompression_bomb_is_refused_before_it_is_decoded(
    tmp_path, monkeypatch, pixels_over_limit
):
    path = tmp_path / "bomb.png"
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", int(100 * 100 / pixels_over_limit))
    with pytest.raises(DataError, match="bomb.png is too large to decode"):
        imaging.load_image(path)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, b"GIF89a..."])
def test_a_damaged_file_is_named_with_the_fix(tmp_path, content):
    path = tmp_path / "photo.png"
    path.write_bytes(content)
    with pytest.raises(DataError, match="photo.png cannot be read as an image.*replace or remove"):
        imaging.load_image(path)


def test_a_good_image_still_loads(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).save(path)
    np.testing.assert_array_equal(imaging.load_image(path)[..., 0], np.arange(12).reshape(3, 4))
