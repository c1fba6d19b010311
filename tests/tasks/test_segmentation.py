"""Segmentation's IoU and losses, against hand counts."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import tasks
from jaxconv.tasks import segmentation
from jaxconv.train.step import mean_metrics


def one_hot_logits(predicted: np.ndarray, num_classes: int) -> jnp.ndarray:
    return jnp.asarray(np.eye(num_classes)[predicted] * 10.0)


def test_iou_of_small_masks_by_hand():
    truth = np.array([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 0]]])
    predicted = np.array([[[0, 1, 1, 1], [0, 0, 1, 0], [2, 2, 0, 0]]])
    task = tasks.get("segmentation")
    _, metrics = task.loss_and_metrics(one_hot_logits(predicted, 3), {"label": truth})
    results = task.summarise(mean_metrics(metrics))
    # class 0: truth {00,01,10,11,23}, predicted {00,10,11,13,22,23}: I=4, U=7
    # class 1: truth {02,03,12,13}, predicted {01,02,03,12}: I=3, U=5
    # class 2: truth {20,21,22}, predicted {20,21}: I=2, U=3
    assert results["iou_0"] == pytest.approx(4 / 7)
    assert results["iou_1"] == pytest.approx(3 / 5)
    assert results["iou_2"] == pytest.approx(2 / 3)
    assert results["miou"] == pytest.approx((4 / 7 + 3 / 5 + 2 / 3) / 3)
    assert results["pixel_accuracy"] == pytest.approx(9 / 12)


def test_miou_skips_classes_absent_from_truth_and_prediction_and_sums_over_batches():
    task = tasks.get("segmentation")
    first = np.array([[[0, 1], [1, 1]]])
    second = np.array([[[0, 0], [0, 1]]])
    totals = None
    from jaxconv.train.step import add_metrics

    for truth, predicted in [(first, first), (second, np.zeros_like(second))]:
        _, metrics = task.loss_and_metrics(one_hot_logits(predicted, 4), {"label": truth})
        totals = add_metrics(totals, metrics)
    results = task.summarise(mean_metrics(totals))
    # class 0: I = 1 + 3, U = 1 + 4; class 1: I = 3 + 0, U = 3 + 1; classes 2, 3 absent.
    assert results["iou_0"] == pytest.approx(4 / 5)
    assert results["iou_1"] == pytest.approx(3 / 4)
    assert np.isnan(results["iou_2"])
    assert results["miou"] == pytest.approx((4 / 5 + 3 / 4) / 2)


def test_class_weights_and_dice_change_the_loss_as_defined():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(2, 5, 5, 3)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 3, (2, 5, 5)))
    plain, _ = segmentation.loss_and_metrics(logits, {"label": labels})
    weighted, _ = segmentation.loss_and_metrics(
        logits, {"label": labels}, class_weights=(1.0, 2.0, 0.5)
    )
    log_probabilities = np.asarray(logits) - np.log(
        np.exp(np.asarray(logits)).sum(-1, keepdims=True)
    )
    losses = -np.take_along_axis(log_probabilities, np.asarray(labels)[..., None], -1)[..., 0]
    weights = np.array([1.0, 2.0, 0.5])[np.asarray(labels)]
    assert float(plain) == pytest.approx(losses.mean(), rel=1e-5)
    assert float(weighted) == pytest.approx((losses * weights).sum() / weights.sum(), rel=1e-5)
    with_dice, _ = segmentation.loss_and_metrics(logits, {"label": labels}, dice_weight=1.0)
    assert float(with_dice) > float(plain)
