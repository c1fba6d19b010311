import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxconv import data
from jaxconv.data import catalog, fashion_mnist, idx, pipeline

TRAIN_LABELS = np.array([3, 1, 4, 1, 5, 9], np.uint8)
TEST_LABELS = np.array([2, 7], np.uint8)


def _images(count: int, offset: int) -> np.ndarray:
    """`count` distinct 28x28 images: image i is (offset + i) everywhere but one bright pixel."""
    images = np.repeat(np.arange(offset, offset + count, dtype=np.uint8), 28 * 28)
    images = images.reshape(count, 28, 28)
    images[:, 3, 5] = 255
    return images


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory):
    """A folder with the four IDX files of a tiny Fashion-MNIST: 6 training and 2 test images."""
    folder = tmp_path_factory.mktemp("idx")
    idx.write(folder / "train-images-idx3-ubyte.gz", _images(6, offset=10))
    idx.write(folder / "train-labels-idx1-ubyte.gz", TRAIN_LABELS)
    idx.write(folder / "t10k-images-idx3-ubyte.gz", _images(2, offset=100))
    idx.write(folder / "t10k-labels-idx1-ubyte.gz", TEST_LABELS)
    return folder


@pytest.fixture
def no_local_files(monkeypatch, tmp_path):
    """No IDX files anywhere: not in data_dir, $JAXCONV_DATA_DIR or the Debian folder."""
    monkeypatch.delenv(catalog.DATA_DIR_VARIABLE, raising=False)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "usr-share-datasets")
    return tmp_path


@pytest.mark.parametrize("in_memory", [False, True])
def test_hand_made_idx_files_prepare_and_read_back_in_order(hand_made, in_memory):
    options = {"in_memory": in_memory}
    train = data.get_source("fashion_mnist", "train", str(hand_made), options)
    test = data.get_source("fashion_mnist", "test", str(hand_made), options)
    assert (len(train), len(test)) == (6, 2)
    assert (train.num_classes, train.image_shape) == (10, (28, 28, 1))
    assert isinstance(train, data.ArraySource if in_memory else data.RecordSource)
    example = train[4]
    assert example["image"].dtype == np.uint8 and example["image"].shape == (28, 28, 1)
    assert example["image"][0, 0, 0] == 14 and example["image"][3, 5, 0] == 255
    assert [int(train[i]["label"]) for i in range(6)] == TRAIN_LABELS.tolist()
    assert [int(test[i]["label"]) for i in range(2)] == TEST_LABELS.tolist()
    assert test[1]["image"][0, 0, 0] == 101
    assert train.class_names[9] == "Ankle boot"


def test_records_and_memory_give_the_same_batches(hand_made):
    batches = []
    for in_memory in (False, True):
        source = data.get_source("fashion_mnist", "train", str(hand_made), {"in_memory": in_memory})
        dataset = pipeline.train_dataset(source, batch_size=4, seed=1, augment_spec="translate:2")
        batches.append([dataset[b] for b in range(3)])
    for on_disk, in_memory in zip(*batches, strict=True):
        np.testing.assert_array_equal(on_disk["image"], in_memory["image"])
        np.testing.assert_array_equal(on_disk["label"], in_memory["label"])


def test_preparation_happens_once(hand_made):
    data.get_source("fashion_mnist", "test", str(hand_made))
    prepared = sorted((hand_made / "tfds").rglob("*.array_record*"))
    stamps = [path.stat().st_mtime_ns for path in prepared]
    data.get_source("fashion_mnist", "train", str(hand_made))
    assert len(prepared) == 2
    assert [path.stat().st_mtime_ns for path in prepared] == stamps


def test_prepared_data_is_read_after_its_files_are_gone(hand_made, no_local_files):
    folder = no_local_files / "copy"
    folder.mkdir()
    for path in hand_made.glob("*.gz"):
        (folder / path.name).write_bytes(path.read_bytes())
    data.get_source("fashion_mnist", "test", str(folder))
    for path in folder.glob("*.gz"):
        path.unlink()
    assert len(data.get_source("fashion_mnist", "train", str(folder))) == 6


def test_builder_and_reader_never_import_tensorflow(hand_made):
    code = (
        "import sys; from jaxconv import data; "
        f"source = data.get_source('fashion_mnist', 'train', {str(hand_made)!r}); "
        "source[0]; print('tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"  # TFDS may log before it


def test_inconsistent_files_are_refused(tmp_path, hand_made):
    for path in hand_made.glob("*.gz"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    idx.write(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([1, 2, 3], np.uint8))
    with pytest.raises(ValueError, match="3 labels for 2 images"):
        fashion_mnist.read_split(*fashion_mnist.find_files(str(tmp_path))["test"])


def test_missing_files_name_the_folders_and_the_commands(no_local_files, monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("storage.googleapis.com:443 is unreachable (test)")

    monkeypatch.setattr(catalog, "check_reachable", offline)
    with pytest.raises(FileNotFoundError) as error:
        data.get_source("fashion_mnist", "train", str(no_local_files / "mine"))
    message = str(error.value)
    assert "t10k-labels-idx1-ubyte.gz" in message
    assert str(no_local_files / "mine") in message and "usr-share-datasets" in message
    assert "apt-get update && apt-get install -y dataset-fashion-mnist" in message
    assert "JAXCONV_DATA_DIR=" in message and "unreachable" in message


def test_without_local_files_the_tfds_catalog_is_used(no_local_files):
    # The mock's batched read (`__getitems__`) lacks its `self` argument in TFDS 4.9.10, so
    # this reads records one by one instead of holding the split in memory.
    with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
        source = data.get_source("fashion_mnist", "test", str(no_local_files), {"in_memory": False})
    assert len(source) == 5 and source.image_shape == (28, 28, 1)
    assert source[0]["image"].dtype == np.uint8 and 0 <= source[0]["label"] < 10


@pytest.mark.skipif(
    not (fashion_mnist.DEBIAN_DIR / fashion_mnist.FILES["train"][0]).exists(),
    reason="needs the Debian package: apt-get install -y dataset-fashion-mnist",
)
def test_debian_files_give_the_full_dataset(tmp_path, monkeypatch):
    monkeypatch.delenv(catalog.DATA_DIR_VARIABLE, raising=False)
    options = {"in_memory": False}
    train = data.get_source("fashion_mnist", "train", str(tmp_path), options)
    test = data.get_source("fashion_mnist", "test", str(tmp_path), options)
    assert (len(train), len(test)) == (60_000, 10_000)
    # Published facts of the dataset: 6,000 training and 1,000 test images per class, and the
    # first image of both splits is an ankle boot (class 9).
    labels = idx.read(fashion_mnist.DEBIAN_DIR / fashion_mnist.FILES["train"][1])
    np.testing.assert_array_equal(np.bincount(labels), [6000] * 10)
    assert int(train[0]["label"]) == 9 and int(test[0]["label"]) == 9
    images = idx.read(fashion_mnist.DEBIAN_DIR / fashion_mnist.FILES["test"][0])
    np.testing.assert_array_equal(test[9_999]["image"][..., 0], images[9_999])
    assert train[0]["image"].dtype == np.uint8 and train[0]["image"].max() == 255
