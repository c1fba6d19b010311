"""Classification's loss and metrics, by hand."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import tasks
from jaxconv.train.step import mean_metrics


def test_classification_counts_masked_rows_out():
    logits = jnp.array([[2.0, 0.0], [0.0, 3.0], [5.0, 0.0]])  # predicts 0, 1, 0
    batch = {"label": jnp.array([0, 0, 1]), "mask": jnp.array([1.0, 1.0, 0.0])}
    loss, metrics = tasks.get("classification").loss_and_metrics(logits, batch)
    means = mean_metrics(metrics)
    assert means["accuracy"] == pytest.approx(0.5)  # the padded third row does not count
    expected = (np.log1p(np.exp(-2.0)) + np.log1p(np.exp(3.0))) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert means["loss"] == pytest.approx(expected, rel=1e-6)
