import numpy as np
import pytest
from PIL import Image

from jaxconv import data
from jaxconv.errors import DataError


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


def _colour(value: int, size=(6, 8)) -> np.ndarray:
    return np.full((*size, 3), value, np.uint8)


@pytest.fixture
def classes(tmp_path):
    """train/{cat,dog}, test/{cat,dog}: cats are dark, dogs bright; one JPEG among PNGs."""
    for split, count in (("train", 3), ("test", 1)):
        for index in range(count):
            _save(tmp_path / split / "cat" / f"c{index}.png", _colour(10 + index))
            _save(tmp_path / split / "dog" / f"d{index}.png", _colour(240 - index))
    _save(tmp_path / "train" / "dog" / "d9.jpg", _colour(230))
    (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image")
    return tmp_path


def test_class_folders_give_sorted_class_ids(classes):
    train = data.get_source("image_folder", "train", str(classes))
    test = data.get_source("image_folder", "test", str(classes))
    assert (len(train), len(test)) == (7, 2)
    assert train.class_names == ("cat", "dog") and train.num_classes == 2
    assert train.image_shape == (6, 8, 3) and train.images.dtype == np.uint8
    brightness = train.images.mean(axis=(1, 2, 3))
    np.testing.assert_array_equal(train.labels, (brightness > 128).astype(np.int32))
    np.testing.assert_array_equal(test.labels, [0, 1])


def test_images_are_resized_and_made_grey_on_request(classes):
    options = {"image_size": 4, "channels": 1}
    train = data.get_source("image_folder", "train", str(classes), options)
    assert train.image_shape == (4, 4, 1)
    assert train.images[0, 0, 0, 0] == 10  # a flat image stays flat when resized


def test_images_of_different_sizes_need_an_image_size(classes):
    _save(classes / "train" / "cat" / "big.png", _colour(10, size=(9, 9)))
    with pytest.raises(ValueError, match="set data.image_size"):
        data.get_source("image_folder", "train", str(classes))


def test_a_folder_without_splits_holds_out_a_fixed_fifth(tmp_path):
    for index in range(10):
        _save(tmp_path / "a" / f"{index}.png", _colour(index))
        _save(tmp_path / "b" / f"{index}.png", _colour(100 + index))
    train = data.get_source("image_folder", "train", str(tmp_path))
    test = data.get_source("image_folder", "test", str(tmp_path))
    assert (len(train), len(test)) == (16, 4)
    seen = set(train.images[:, 0, 0, 0]) | set(test.images[:, 0, 0, 0])
    assert len(seen) == 20  # every image once, in one split only


def test_segmentation_pairs_match_by_stem_and_resize_masks_by_nearest(tmp_path):
    for split in ("train", "test"):
        for index in range(2):
            mask = np.zeros((8, 8), np.uint8)
            mask[:, 4:] = 2 + index  # class 2 or 3 on the right half
            image = np.where(mask > 0, 200, 20).astype(np.uint8)
            _save(tmp_path / split / "images" / f"p{index}.jpg", image)
            _save(tmp_path / split / "masks" / f"p{index}.png", mask)
    options = {"image_size": 4}
    train = data.get_source("image_folder", "train", str(tmp_path), options)
    test = data.get_source("image_folder", "test", str(tmp_path), options)
    assert train.num_classes == 4 and test.num_classes == 4  # largest training class + 1
    assert train.labels.shape == (2, 4, 4) and train.labels.dtype == np.int32
    np.testing.assert_array_equal(train.labels[1], [[0, 0, 3, 3]] * 4)
    assert train.image_shape == (4, 4, 1)


def test_a_mask_missing_for_an_image_is_named(tmp_path):
    _save(tmp_path / "images" / "a.png", np.zeros((4, 4), np.uint8))
    _save(tmp_path / "images" / "b.png", np.zeros((4, 4), np.uint8))
    _save(tmp_path / "masks" / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(FileNotFoundError, match="first: b.png"):
        data.get_source("image_folder", "train", str(tmp_path))


def test_image_folder_needs_a_data_dir():
    with pytest.raises(ValueError, match="set it, e.g. --config.data.data_dir"):
        data.get_source("image_folder", "train")


def test_a_folder_of_one_class_is_refused(tmp_path):
    for index in range(3):
        _save(tmp_path / "train" / "cat" / f"c{index}.png", _colour(10 + index))
        _save(tmp_path / "test" / "cat" / f"t{index}.png", _colour(20 + index))
    with pytest.raises(DataError, match="holds one class folder \\('cat'\\).*two or more"):
        data.get_source("image_folder", "train", str(tmp_path))


def test_a_corrupt_jpeg_is_named_by_its_path(classes):
    broken = classes / "train" / "dog" / "d9.jpg"
    broken.write_bytes(broken.read_bytes()[:40])
    with pytest.raises(DataError, match=f"{broken} cannot be read as an image"):
        data.get_source("image_folder", "train", str(classes))
