"""One compile per step function: a run that starts from pretrained or restored variables must
not compile its training step a second time once the first step's outputs come back."""

import logging

import jax
import pytest

from jaxconv.train import loop


class CompileLog(logging.Handler):
    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Compiling "):
            self.names.append(message.split()[1])


@pytest.fixture
def compiles():
    handler = CompileLog()
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.WARNING)
    with jax.log_compiles(True):
        yield handler.names
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_transfer_from_a_checkpoint_compiles_the_train_step_once(tmp_path, compiles, digits_config):
    loop.run(digits_config(2), tmp_path / "source")
    compiles.clear()
    config = digits_config(4)
    config.transfer.source = f"checkpoint:{tmp_path / 'source'}"
    loop.run(config, tmp_path / "transfer")
    assert compiles.count("jit(train_step)") == 1, compiles


def test_resumed_run_compiles_the_train_step_once(tmp_path, compiles, digits_config):
    loop.run(digits_config(2), tmp_path)
    compiles.clear()
    loop.run(digits_config(4), tmp_path)  # continues from step 2
    assert compiles.count("jit(train_step)") == 1, compiles
