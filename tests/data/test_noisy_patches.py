import numpy as np
import pytest
import skimage.data
from PIL import Image
from scipy import stats

from jaxconv import data
from jaxconv.data import noisy_patches, pipeline


def _source(split="train", data_dir=None, **options):
    return data.get_source("noisy_patches", split, data_dir, options)


def test_sizes_shapes_and_dtypes():
    train, test = _source("train"), _source("test")
    assert len(train) == 20_000 and train.image_shape == (40, 40, 1)
    assert train.num_classes is None and test.image_shape == (128, 128, 1)
    example = train[0]
    assert example["image"].dtype == np.float32 and example["image"].shape == (40, 40, 1)
    assert example["target"].dtype == np.uint8 and example["target"].shape == (40, 40, 1)
    assert example["sigma"].dtype == np.float32 and example["sigma"] == 25


def test_noise_is_gaussian_with_sigma_on_the_255_scale_and_not_clipped():
    source = _source(sigma=15.0)
    noise = np.concatenate(
        [(e["image"] - e["target"]).ravel() for e in (source[i] for i in range(100))]
    )
    assert abs(noise.mean()) < 0.2 and noise.std() == pytest.approx(15.0, rel=0.01)
    within_one_sigma = np.mean(np.abs(noise) < 15.0)
    assert within_one_sigma == pytest.approx(stats.norm.cdf(1) - stats.norm.cdf(-1), abs=0.01)
    noisy = np.concatenate([source[i]["image"].ravel() for i in range(100)])
    assert noisy.min() < 0 or noisy.max() > 255


def test_sigma_range_draws_a_sigma_per_training_example():
    source = _source(sigma_range=(5.0, 50.0), sigma=25.0)
    sigmas = np.array([source[i]["sigma"] for i in range(40)])
    assert 5 <= sigmas.min() and sigmas.max() <= 50 and sigmas.std() > 5
    for index in range(5):
        example = source[index]
        measured = (example["image"] - example["target"]).std()
        assert measured == pytest.approx(example["sigma"], rel=0.1)
    assert {float(_source("test", sigma_range=(5.0, 50.0))[i]["sigma"]) for i in range(3)} == {25}


def test_same_seed_same_examples():
    first, again, other = _source(seed=1), _source(seed=1), _source(seed=2)
    np.testing.assert_array_equal(first[17]["image"], again[17]["image"])
    assert not np.array_equal(first[17]["image"], other[17]["image"])
    np.testing.assert_array_equal(_source("test")[3]["image"], _source("test")[3]["image"])


def test_test_tiles_cover_the_whole_test_photographs():
    test = _source("test")
    assert len(test) == 16 + 16 + 9 + 6  # camera, moon 512x512; coins 303x384; page 191x384
    tiles = [test[index]["target"][..., 0] for index in range(16)]  # camera's, row by row
    camera = np.block([tiles[4 * row : 4 * row + 4] for row in range(4)])
    np.testing.assert_array_equal(camera, skimage.data.camera())
    page = skimage.data.page()
    np.testing.assert_array_equal(test[len(test) - 1]["target"][..., 0], page[-128:, -128:])


def test_no_training_photograph_is_a_test_photograph():
    train = noisy_patches.photos("train", None, noisy_patches.TEST_PHOTOS)
    test = noisy_patches.photos("test", None, noisy_patches.TEST_PHOTOS)
    assert len(train) >= 10 and len(test) == 4
    for photo in train:
        assert not any(photo.shape == t.shape and np.array_equal(photo, t) for t in test)
    with pytest.raises(ValueError, match="must keep camera"):
        _source(test_images=("moon", "coins", "page"))


def test_validation_tiles_cover_scikit_learns_two_photographs_in_grey():
    from sklearn.datasets import load_sample_image

    validation = _source("validation")
    assert len(validation) == 2 * 4 * 5  # 427x640 each: 4 rows, 5 columns of 128x128 tiles
    rows, columns = noisy_patches.tile_starts(427, 128), noisy_patches.tile_starts(640, 128)
    china = np.zeros((427, 640))
    for index, (top, left) in enumerate((t, c) for t in rows for c in columns):
        china[top : top + 128, left : left + 128] = validation[index]["target"][..., 0]
    rgb = load_sample_image("china.jpg").astype(np.float64) / 255
    luminance = rgb @ np.array([0.2125, 0.7154, 0.0721])  # ITU-R BT.709
    assert np.abs(china - np.rint(luminance * 255)).max() <= 1
    noise = validation[0]["image"] - validation[0]["target"]
    assert noise.std() == pytest.approx(25, rel=0.05)


def test_validation_photographs_are_in_neither_training_nor_test():
    validation = noisy_patches.photos("validation", None, noisy_patches.TEST_PHOTOS)
    others = noisy_patches.photos("train", None, noisy_patches.TEST_PHOTOS)
    others += noisy_patches.photos("test", None, noisy_patches.TEST_PHOTOS)
    assert len(validation) == 2
    for photo in validation:
        assert not any(photo.shape == o.shape and np.array_equal(photo, o) for o in others)
    # Its own noise draws: the same tile in two splits would not share its noise.
    assert _source("validation").stream != _source("test").stream


def test_unknown_splits_are_refused_naming_the_dataset_s_splits():
    with pytest.raises(ValueError, match="it has train, validation, test"):
        _source("val")
    with pytest.raises(ValueError, match="unknown split 'validation' of dataset 'digits'"):
        data.get_source("digits", "validation")


@pytest.fixture
def photo_folder(tmp_path):
    """Training photographs with values 10-60, test photographs with values 200-250."""
    rng = np.random.default_rng(0)
    for split, low, count in (("train", 10, 3), ("test", 200, 2)):
        (tmp_path / split).mkdir()
        for index in range(count):
            pixels = rng.integers(low, low + 51, (64, 80), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / split / f"{index}.png")
    return tmp_path


def test_an_image_folder_splits_by_image(photo_folder):
    train = _source("train", str(photo_folder), patch_size=16, num_train_examples=200)
    test = _source("test", str(photo_folder), test_tile_size=0)
    train_pixels = np.concatenate([train[i]["target"].ravel() for i in range(200)])
    assert 10 <= train_pixels.min() and train_pixels.max() <= 60
    assert len(test) == 2 and test.image_shape == (64, 80, 1)  # whole images
    assert all(200 <= test[i]["target"].min() for i in range(2))
    with pytest.raises(FileNotFoundError, match="add a validation/ folder"):
        _source("validation", str(photo_folder))
    (photo_folder / "validation").mkdir()
    Image.fromarray(np.full((64, 80), 120, np.uint8)).save(photo_folder / "validation" / "v.png")
    validation = _source("validation", str(photo_folder), test_tile_size=0)
    assert len(validation) == 1 and validation[0]["target"].min() == 120


def test_whole_test_images_of_different_sizes_are_refused():
    with pytest.raises(ValueError, match="differ in size"):
        _source("test", test_tile_size=0)


def test_pipeline_normalises_image_and_target_alike():
    batch = next(pipeline.eval_batches(_source("test"), batch_size=8, mean=0.5, std=0.5))
    assert batch["target"].dtype == np.float32 and -1 <= batch["target"].min()
    assert batch["target"].max() <= 1 and batch["sigma"].shape == (8,)
    noise = (batch["image"] - batch["target"]) * 0.5 * 255
    assert noise.std() == pytest.approx(25, rel=0.05)
