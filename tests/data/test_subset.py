import numpy as np
import pytest

from jaxconv import data
from jaxconv.data import subset
from jaxconv.data.source import ArraySource


def test_budget_takes_that_many_of_each_class_and_nests():
    labels = np.repeat(np.arange(3), [50, 30, 5]).astype(np.int32)
    images = np.arange(len(labels), dtype=np.uint8).reshape(-1, 1, 1, 1)
    source = ArraySource(images, labels, num_classes=3)
    ten = subset.per_class(source, 10, seed=4)
    counts = np.bincount([ten[i]["label"] for i in range(len(ten))])
    np.testing.assert_array_equal(counts, [10, 10, 5])  # all 5 of the small class
    twenty = subset.per_class(source, 20, seed=4)
    assert set(ten.indices) <= set(twenty.indices)
    batch = ten.__getitems__([0, 1])
    assert [b["image"].item() for b in batch] == list(ten.indices[:2])


def test_budget_applies_to_the_training_split_only():
    options = {"examples_per_class": 3, "train_split": "train"}
    train = data.get_source("digits", "train", None, options)
    test = data.get_source("digits", "test", None, options)
    assert len(train) == 30 and len(test) == 359


def test_budget_refuses_per_pixel_labels():
    source = ArraySource(np.zeros((4, 2, 2, 1), np.uint8), np.zeros((4, 2, 2), np.int32), 2)
    with pytest.raises(ValueError, match="one class label per example"):
        subset.per_class(source, 1)
