import gzip

import numpy as np
import pytest

from jaxconv.data import idx

# A (2, 2, 3) uint8 image file written out by hand from the format's description:
# magic 00 00 08 03, then the sizes 2, 2, 3 as big-endian uint32, then the 12 values.
HAND_MADE_IMAGES = (
    b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x03"
) + bytes([0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255])
# A (3,) label file: magic 00 00 08 01, size 3, values 7 0 9.
HAND_MADE_LABELS = b"\x00\x00\x08\x01\x00\x00\x00\x03\x07\x00\x09"


def test_parse_reads_a_hand_made_image_file():
    images = idx.parse(HAND_MADE_IMAGES)
    assert images.shape == (2, 2, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[0], [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(images[1, 1], [253, 254, 255])


def test_parse_reads_big_endian_wider_types():
    # One int16 value 0x0102 = 258 and one -2 (0xFFFE), type code 0x0B.
    raw = b"\x00\x00\x0b\x01\x00\x00\x00\x02\x01\x02\xff\xfe"
    values = idx.parse(raw)
    np.testing.assert_array_equal(values, [258, -2])
    assert values.dtype == np.int16 and values.dtype.isnative


def test_read_gzip_and_plain_files_alike(tmp_path):
    (tmp_path / "labels.gz").write_bytes(gzip.compress(HAND_MADE_LABELS))
    (tmp_path / "labels").write_bytes(HAND_MADE_LABELS)
    np.testing.assert_array_equal(idx.read(tmp_path / "labels.gz"), [7, 0, 9])
    np.testing.assert_array_equal(idx.read(tmp_path / "labels"), [7, 0, 9])


def test_write_round_trips_through_the_hand_made_bytes(tmp_path):
    idx.write(tmp_path / "images.gz", idx.parse(HAND_MADE_IMAGES))
    assert gzip.decompress((tmp_path / "images.gz").read_bytes()) == HAND_MADE_IMAGES


@pytest.mark.parametrize(
    "raw, message",
    [
        (
            b"\x08\x03\x00\x00" + HAND_MADE_IMAGES[4:],
            "not an IDX file: its magic number is 08030000",
        ),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "not an IDX file"),
        (HAND_MADE_IMAGES[:-1], "holds 27 bytes .* says 28: the file is truncated"),
        (HAND_MADE_IMAGES[:10], "truncated inside its header"),
        (b"", "magic number is missing"),
    ],
)
def test_corrupt_files_are_refused_with_the_reason(raw, message):
    with pytest.raises(ValueError, match=message):
        idx.parse(raw, name="bad-file")


def test_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(HAND_MADE_IMAGES)[:-6])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz is a corrupt gzip file"):
        idx.read(path)
