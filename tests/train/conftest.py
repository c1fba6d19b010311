"""A run small enough to train in seconds in-process: an MLP on scikit-learn's 8x8 digits."""

import pytest

from jaxconv.configs import base


def digits_run(steps: int = 2):
    config = base.get_config()
    config.data.name = "digits"
    config.model.name = "mlp"
    config.batch_size = 16
    config.eval_batch_size = 64
    config.num_train_steps = steps
    config.log_every_steps = 1
    config.checkpoint_every_steps = 2
    return config


@pytest.fixture
def digits_config():
    """`digits_config(steps)`: a fresh config of that run."""
    return digits_run
