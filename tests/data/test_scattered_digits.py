import numpy as np
import pytest

from jaxconv import data
from jaxconv.data import mnist_5k, pipeline, scattered_digits


def _source(split="train", **options):
    return data.get_source("scattered_digits", split, options=options)


def test_sizes_shapes_dtypes_and_label_range():
    train, test = _source("train"), _source("test")
    assert (len(train), len(test)) == (20_000, 500)
    assert train.num_classes == 11 and train.image_shape == (64, 64, 1)
    example = train[123]
    assert example["image"].dtype == np.uint8 and example["image"].shape == (64, 64, 1)
    assert example["label"].dtype == np.int32 and example["label"].shape == (64, 64)
    labels = np.stack([train[i]["label"] for i in range(50)])
    assert labels.min() == 0 and labels.max() <= 10 and len(np.unique(labels)) > 5


def test_same_seed_same_canvas_in_any_order_and_seeds_differ():
    first, again = _source(seed=4), _source(seed=4)
    order = [7, 3, 7, 0]
    for index in order:
        np.testing.assert_array_equal(first[index]["image"], again[index]["image"])
        np.testing.assert_array_equal(first[index]["label"], again[index]["label"])
    assert not np.array_equal(first[3]["image"], first[7]["image"])
    assert not np.array_equal(first[3]["image"], _source(seed=5)[3]["image"])


def _find(image: np.ndarray, pool: np.ndarray) -> int | None:
    matches = np.flatnonzero((pool == image).all(axis=(1, 2, 3)))
    return int(matches[0]) if len(matches) else None


@pytest.mark.parametrize("split", ["train", "test"])
def test_single_unscaled_item_is_a_real_digit_of_its_own_split_labelled_by_class(split):
    """On a 28x28 canvas at scale 1, a canvas is exactly one mnist_5k digit: find it."""
    source = _source(split, canvas_size=28, items_per_canvas=1, scale_range=1.0)
    own, other = mnist_5k.load(split), mnist_5k.load("test" if split == "train" else "train")
    for index in range(8):
        example = source[index]
        found = _find(example["image"], own.images)
        assert found is not None and _find(example["image"], other.images) is None
        digit = own.images[found, ..., 0].astype(np.float64)
        expected = np.where(digit > 0.3 * digit.max(), own.labels[found] + 1, 0)
        np.testing.assert_array_equal(example["label"], expected)


def test_labelled_pixels_are_bright_and_classes_come_from_the_items():
    source = _source(canvas_size=48, items_per_canvas=(2, 3))
    for index in range(20):
        image, label = source[index]["image"][..., 0], source[index]["label"]
        # A labelled pixel is brighter than 0.3 of its item's maximum; zoomed real digits keep
        # a maximum near 255, so labelled pixels are never dark.
        assert (label > 0).any() and (image[label > 0] > 60).all()
        assert len(np.unique(label[label > 0])) <= 3


def test_canvas_too_small_for_the_largest_item_is_refused():
    with pytest.raises(ValueError, match="use canvas_size >= 36"):
        _source(canvas_size=32)


def test_batches_through_the_pipeline_move_image_and_label_together():
    source = _source(num_train_examples=64, canvas_size=32, scale_range=(0.7, 1.1))
    dataset = pipeline.train_dataset(
        source, batch_size=16, seed=0, augment_spec="translate:3|flip_horizontal"
    )
    batch = dataset[1]
    assert batch["image"].shape == (16, 32, 32, 1) and batch["label"].shape == (16, 32, 32)
    assert (batch["image"][..., 0][batch["label"] > 0] > 0).all()


def test_training_canvases_may_hold_another_number_of_items_than_test_ones():
    options = dict(canvas_size=96, items_per_canvas=1, train_items_per_canvas=(3, 3))
    train, test = _source("train", **options), _source("test", **options)
    assert (train.items_per_canvas, test.items_per_canvas) == ((3, 3), (1, 1))
    classes = [len(np.unique(c["label"][c["label"] > 0])) for c in (train[i] for i in range(20))]
    assert max(classes) == 3
    assert all(len(np.unique(test[i]["label"][test[i]["label"] > 0])) == 1 for i in range(20))


def test_warped_items_turn_and_shear_as_the_hand_computed_map_says():
    digit = mnist_5k.load("train").images[0, ..., 0]
    # A quarter turn is a 90-degree rotation of the array, exactly.
    turned = scattered_digits.warped(digit, 1.0, 90.0, 0.0)
    assert turned.shape == digit.shape
    assert np.array_equal(turned, np.rot90(digit)) or np.array_equal(turned, np.rot90(digit, -1))
    # A shear of 1 moves row r's pixels by r - 4 columns (row 4 is the centre of 9 rows) in a
    # box 21 + 9 wide, whose centre column is 14.5 where the item's is 10: a pixel at (4, 10)
    # lands at (4, 14.5), one at (8, 10) at (8, 18.5), each split evenly between two columns
    # by the linear interpolation.
    item = np.zeros((9, 21), np.uint8)
    item[4, 10] = item[8, 10] = 200
    sheared = scattered_digits.warped(item, 1.0, 0.0, 1.0)
    assert sheared.shape == (9, 30)
    expected = np.zeros((9, 30), np.uint8)
    expected[4, 14:16] = expected[8, 18:20] = 100
    np.testing.assert_array_equal(sheared, expected)
    # Without a turn or shear the box is zoom's: the sizes `zoomed` gives.
    for scale in (0.7, 0.93, 1.3):
        assert scattered_digits.warped(digit, scale, 0.0, 0.0).shape == (
            scattered_digits.zoomed(digit, scale).shape
        )


def test_only_training_canvases_are_distorted_and_labels_still_follow_their_pixels():
    options = dict(train_rotation=20.0, train_shear=0.3, num_train_examples=30)
    plain_train, plain_test = _source("train", num_train_examples=30), _source("test")
    train, test = _source("train", **options), _source("test", **options)
    assert (train.rotation, train.shear, test.rotation, test.shear) == (20.0, 0.3, 0.0, 0.0)
    for index in range(10):
        np.testing.assert_array_equal(test[index]["image"], plain_test[index]["image"])
    assert any(not np.array_equal(train[i]["image"], plain_train[i]["image"]) for i in range(10))
    for index in range(30):
        image, label = train[index]["image"][..., 0], train[index]["label"]
        assert (image[label > 0] > 0).all() and label.max() <= 10
        assert (label > 0).sum() > 0.5 * (plain_train[index]["label"] > 0).sum()


def test_distortion_out_of_range_is_refused_and_its_box_must_fit_the_canvas():
    with pytest.raises(ValueError, match="rotation must be in"):
        _source(train_rotation=60.0)
    # 28 * 1.3 * (cos 30 + sin 30) = 49.7: a 48x48 canvas holds the unturned items only.
    _source(canvas_size=48)
    with pytest.raises(ValueError, match="use canvas_size >= 50"):
        _source(canvas_size=48, train_rotation=30.0)
