"""Test-wide setup: 8 simulated CPU devices, so every training test runs the sharded path.

This must run before JAX initialises its backend, hence here and not in a fixture.
"""

import os
import pathlib
import shutil
import tempfile

import pytest

# Convolution plans measured by one test are reused by the others (every xdist worker of this
# run shares the folder), never read from or written to the user's own cache. The first process
# of the run (xdist's controller, or pytest alone) makes the folder, the workers it starts
# inherit its name, and it removes the folder when the session ends.
_made_here = None
if "JAXCONV_TEST_CACHE" not in os.environ:
    _made_here = os.environ["JAXCONV_TEST_CACHE"] = tempfile.mkdtemp(prefix="jaxconv-test-cache-")
_cache = pathlib.Path(os.environ["JAXCONV_TEST_CACHE"])
os.environ["JAXCONV_CACHE_DIR"] = str(_cache)
# XLA's compiled programs are shared the same way, with the launch.py subprocesses too: the
# fault, resume and device-count tests compile the same LeNet-5 steps run after run. JAX reads
# these when it is imported, so they are set before anything imports it.
os.environ["JAX_COMPILATION_CACHE_DIR"] = str(_cache / "xla")
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"

from jaxconv.configs import base  # noqa: E402  (after the variables above)
from jaxconv.cpu import platform  # noqa: E402

# Tests compile far more than they run. With LLVM's optimisations at level 1 instead of the
# default, XLA compiles a model's random initialisers ~5x faster (a small U-Net's initial
# variables: 28 s against 5.4 s, bit for bit the same values): the suite took 15.6 minutes
# instead of 18.4 on a 2-core Zen 1. Not level 0: jaxlib 0.10.2 miscompiles there (LeNet-5's
# gradient with its first convolution as per-tap products comes out wrong; right at 1 and 2).
# Subprocesses that set their own device count keep the rest (`XLA_FLAGS_WITHOUT_DEVICES`).
os.environ["XLA_FLAGS_WITHOUT_DEVICES"] = (
    os.environ.get("XLA_FLAGS", platform.CPU_XLA_FLAGS) + " --xla_backend_optimization_level=1"
)
os.environ["XLA_FLAGS"] = (
    os.environ["XLA_FLAGS_WITHOUT_DEVICES"] + " --xla_force_host_platform_device_count=8"
)


@pytest.fixture(autouse=True)
def temporary_files_in_tmp_path(tmp_path, monkeypatch):
    """Temporary files the code under test makes go in the test's own tmp_path, which pytest
    prunes, not in /tmp: TFDS leaves an empty folder there each time it initialises a
    dataset's info offline (24 a run from the catalog and Fashion-MNIST tests alone)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def pytest_sessionfinish(session, exitstatus):
    if _made_here:
        shutil.rmtree(_made_here, ignore_errors=True)


# A run small enough to train in seconds in-process: an MLP on scikit-learn's 8x8 digits.


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
