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

# After the flags: these import JAX.
import json  # noqa: E402

import grain  # noqa: E402
import jax  # noqa: E402
import optax  # noqa: E402

from jaxconv import data, tasks  # noqa: E402
from jaxconv.models.from_config import build_model  # noqa: E402
from jaxconv.train import state as state_lib  # noqa: E402
from jaxconv.workdir.checkpoint import Checkpointer  # noqa: E402


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


# Runs saved by hand (freshly initialised, one checkpoint at step 5): a report, an export or
# predictions draw from them in seconds.
def save_run(workdir: pathlib.Path, config, records: list[dict], summary: dict | None = None):
    """Writes a run of `config` with freshly initialised parameters saved at step 5."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    source = data.get_source(
        config.data.name, config.data.eval_split, config.data.data_dir, config.data
    )
    task = tasks.get(config.task, config)
    model = build_model(config, task.output_size(source))
    # Jitted: initialising op by op would compile every initializer on its own.
    create = jax.jit(
        lambda rng: state_lib.create(model, optax.sgd(0.1), (1, *source.image_shape), rng)
    )
    state = create(jax.random.PRNGKey(config.seed)).replace(step=jax.numpy.asarray(5))
    checkpointer = Checkpointer(workdir, report=lambda message: None)
    iterator = iter(grain.MapDataset.range(4).to_iter_dataset())
    checkpointer.save(state, iterator)
    checkpointer.wait()
    checkpointer.close()
    (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if summary is not None:
        (workdir / "summary.json").write_text(json.dumps(summary))
    return workdir


def records(eval_metrics: dict[str, float], steps=(1, 2, 3, 4, 5)) -> list[dict]:
    """Training records at `steps` and one evaluation record at the last step."""
    train = [
        {
            "step": step,
            "train_loss": 2.0 / step,
            "train_grad_norm": 1.0,
            "learning_rate": 0.1,
            "images_per_second": 100.0 + step,
        }
        for step in steps
    ]
    return [*train, {"step": steps[-1], **eval_metrics}]


@pytest.fixture(scope="module")
def segmentation_run(tmp_path_factory):
    """A valid-padding U-Net (its output smaller than its input) on 32x32 scattered digits."""
    config = base.get_config()
    config.task = "segmentation"
    config.model.name = "unet"
    config.model.depth = 1
    config.model.width = 4
    config.data.name = "scattered_digits"
    config.data.canvas_size = 32
    config.data.scale_range = (0.7, 1.1)
    config.data.num_train_examples = 8
    config.data.num_test_examples = 8
    metrics = {"test_loss": 1.0, "test_pixel_accuracy": 0.5, "test_iou_0": 0.4, "test_miou": 0.1}
    return save_run(tmp_path_factory.mktemp("report") / "unet", config, records(metrics))


@pytest.fixture(scope="module")
def denoising_run(tmp_path_factory):
    """A 3-layer DnCNN predicting the noise on 32x32 tiles of grey photographs."""
    config = base.get_config()
    config.task = "denoising"
    config.model.name = "dncnn"
    config.model.depth = 3
    config.model.width = 4
    config.data.name = "noisy_patches"
    config.data.test_tile_size = 32
    config.data.num_train_examples = 8
    metrics = {"test_loss": 0.01, "test_psnr": 20.0, "test_ssim": 0.5}
    return save_run(tmp_path_factory.mktemp("report") / "dncnn", config, records(metrics))


@pytest.fixture(scope="module")
def saved_digits_run(tmp_path_factory):
    """A digits MLP run saved by hand."""
    workdir = tmp_path_factory.mktemp("digits") / "run"
    config = base.get_config()
    config.data.name = "digits"
    config.model.name = "mlp"
    return save_run(workdir, config, records({"test_accuracy": 0.5}))
