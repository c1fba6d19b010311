"""The TFDS catalog path (`tfds:<name>`), offline: `tfds.testing.mock_data` stands in for the
prepared files. The `USE_CODE` policy takes features from the builders' code, so no metadata
files are needed; TFDS's mock reads records one at a time (its batched read is broken in
4.9.10), hence `in_memory=False` where the random mock data is read.
"""

import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxconv import data
from jaxconv.data import catalog
from jaxconv.errors import ConfigError

ON_DISK = {"in_memory": False}


def mocked(**kwargs):
    return tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, **kwargs)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test here may reach the network, online machines included; TFDS data in tmp_path."""
    monkeypatch.setenv(catalog.DATA_DIR_VARIABLE, str(tmp_path))
    monkeypatch.setattr(catalog, "CATALOG_ADDRESS", ("192.0.2.1", 443))  # TEST-NET-1


@pytest.mark.parametrize(
    "name, shape, num_classes",
    [("mnist", (28, 28, 1), 10), ("cifar10", (32, 32, 3), 10), ("cifar100", (32, 32, 3), 100)],
)
def test_catalog_datasets_give_uint8_images_and_int_labels(name, shape, num_classes):
    with mocked(num_examples=6):
        source = data.get_source(f"tfds:{name}", "train", options=ON_DISK)
        example = source[5]
    assert len(source) == 6 and source.image_shape == shape
    assert source.num_classes == num_classes and len(source.class_names) == num_classes
    assert example["image"].dtype == np.uint8 and example["image"].shape == shape
    assert example["label"].dtype == np.int32 and 0 <= example["label"] < num_classes


def test_images_of_varying_size_need_an_image_size():
    with mocked(num_examples=2), pytest.raises(ValueError, match="set data.image_size"):
        data.get_source("tfds:oxford_iiit_pet", "train")


def test_varying_images_are_resized_to_image_size():
    with mocked(num_examples=3):
        source = data.get_source(
            "tfds:oxford_iiit_pet", "test", options={"image_size": 24, "in_memory": False}
        )
        shapes = {source[i]["image"].shape for i in range(3)}
    assert shapes == {(24, 24, 3)} and source.image_shape == (24, 24, 3)
    assert source.num_classes == 37


def _pet(height: int, width: int) -> dict:
    """A pet example as TFDS stores it: a trimap with 1 = pet, 2 = background, 3 = border."""
    mask = np.full((height, width, 1), 2, np.uint8)
    mask[: height // 2] = 1  # the pet fills the top half
    mask[height // 2] = 3
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2] = 200
    return {"image": image, "segmentation_mask": mask, "label": 5, "species": 0}


def test_pet_trimaps_become_per_pixel_labels_resized_with_the_image():
    examples = [_pet(40, 60), _pet(30, 20)]

    def as_data_source(self, split, **kwargs):
        return examples

    options = {"image_size": 10, "label_key": "segmentation_mask"}
    with mocked(as_data_source_fn=as_data_source):
        source = data.get_source("tfds:oxford_iiit_pet", "train", options=options)
    assert isinstance(source, data.RecordSource) and source.num_classes == 3
    for index in range(2):
        example = source[index]
        assert example["label"].shape == (10, 10) and example["label"].dtype == np.int32
        # Nearest neighbour keeps class ids: pet (0) above, background (1) below, no border
        # row survives at this scale, and the labels follow the image's bright half.
        np.testing.assert_array_equal(example["label"][:5], 0)
        np.testing.assert_array_equal(example["label"][6:], 1)
        assert (example["image"][:4] > 150).all() and (example["image"][6:] < 50).all()


def test_unknown_catalog_name_and_feature_are_refused():
    with pytest.raises(ConfigError, match="not a TFDS catalog dataset"):
        data.get_source("tfds:no_such_dataset", "train")
    with mocked(num_examples=2), pytest.raises(ConfigError, match="no feature 'mask'"):
        data.get_source("tfds:cifar10", "train", options={"label_key": "mask"})


def test_unreachable_network_fails_fast_with_a_clear_error():
    started = time.perf_counter()
    with pytest.raises(ConnectionError) as error:
        catalog.check_reachable(("192.0.2.1", 443), timeout=0.5)
    assert time.perf_counter() - started < 3
    assert "192.0.2.1:443 is unreachable" in str(error.value)


def test_catalog_dataset_that_cannot_be_downloaded_says_so_at_once(monkeypatch, tmp_path):
    monkeypatch.setattr(catalog, "PROBE_TIMEOUT_S", 0.5)
    started = time.perf_counter()
    with pytest.raises(ConnectionError) as error:
        data.get_source("tfds:mnist", "train")
    assert time.perf_counter() - started < 5
    message = str(error.value)
    assert "'mnist' is not prepared in" in message and str(tmp_path / "tfds") in message
    assert "cannot be downloaded" in message and "JAXCONV_DATA_DIR" in message
