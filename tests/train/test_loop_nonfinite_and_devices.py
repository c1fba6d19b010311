"""Non-finite steps, the best-checkpoint policy, and moving a run between device counts."""

import asyncio
import json
import os
import pathlib
import shutil
import subprocess
import sys
import types

import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from orbax.checkpoint import checkpoint_manager

from jaxconv.configs import loading
from jaxconv.train import loop, parallel
from jaxconv.train.state import TrainState
from jaxconv.workdir import checkpoint
from jaxconv.workdir.checkpoint import read_state
from jaxconv.workdir.writers import read_metrics

ROOT = pathlib.Path(__file__).resolve().parents[2]


def short_config(**overrides):
    config = loading.load(str(ROOT / "experiments" / "lenet5_mnist.py"))
    settings = {
        "batch_size": "16",
        "eval_batch_size": "200",
        "num_train_steps": "12",
        "checkpoint_every_steps": "4",
        "log_every_steps": "4",
        "eval_every_steps": "100",
        "fast_conv": "False",  # planned convolutions: tests/cpu and tests/test_launch.py
        **overrides,
    }
    for key, value in settings.items():
        loading.override(config, key, value)
    return config


def poison(monkeypatch, bad_call: int):
    """Makes the images of the `bad_call`-th batch put on the devices NaN."""
    original, calls = parallel.JitStrategy.put_batch, {"count": 0}

    def put_batch(self, batch):
        calls["count"] += 1
        if calls["count"] == bad_call:
            batch = dict(batch, image=np.full_like(batch["image"], np.nan))
        return original(self, batch)

    monkeypatch.setattr(parallel.JitStrategy, "put_batch", put_batch)


def restore_params(workdir, step):
    state = read_state(workdir, step)
    return jax.tree.leaves(state["params"])


def test_nan_batch_stops_the_run_naming_the_step_and_keeps_good_checkpoints(tmp_path, monkeypatch):
    poison(monkeypatch, bad_call=7)
    with pytest.raises(FloatingPointError, match="at step 7"):
        loop.run(short_config(), tmp_path)
    saved = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert saved == [4]
    assert all(np.all(np.isfinite(leaf)) for leaf in restore_params(tmp_path, 4))


def test_nan_batch_is_skipped_when_configured(tmp_path, monkeypatch, capsys):
    poison(monkeypatch, bad_call=7)
    config = short_config(on_nonfinite="skip", max_skipped_share="0.1")  # 1 of 12 is skipped
    summary = loop.run(config, tmp_path)
    said = capsys.readouterr()
    assert (said.out + said.err).count("non-finite loss or gradient; the update was skipped") == 1
    assert "step 7: non-finite" in said.out + said.err
    logged = {r["step"]: r for r in read_metrics(tmp_path) if "train_nonfinite" in r}
    assert logged[8]["train_nonfinite"] == pytest.approx(0.25)  # 1 of the 4 steps 5-8
    assert logged[4]["train_nonfinite"] == 0 and logged[12]["train_nonfinite"] == 0
    assert np.isfinite(logged[8]["train_loss"])
    assert np.isfinite(summary["test_loss"])
    assert all(np.all(np.isfinite(leaf)) for leaf in restore_params(tmp_path, 12))


def _tiny_state():
    params = {"w": jnp.zeros((2, 2))}
    tx = optax.sgd(0.1)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats={},
        opt_state=tx.init(params),
        rng=jax.random.PRNGKey(0),
        ema_params={},
        tx=tx,
    )


def test_keeps_the_newest_checkpoints_and_the_best_one(tmp_path):
    saver = checkpoint.Checkpointer(tmp_path, keep=2, best_metric="test_accuracy")
    iterator = iter(grain.MapDataset.range(100).to_iter_dataset())
    state = _tiny_state()
    for step, accuracy in enumerate([0.5, 0.9, 0.6, 0.7, 0.65], start=1):
        state = state.replace(step=jnp.asarray(step, jnp.int32))
        saver.save(state, iterator, {"test_accuracy": accuracy})
    saver.wait()
    assert sorted(
        int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()
    ) == [2, 4, 5]
    saver.close()


# Removing the folder under an in-flight save can leave orbax's background thread calling
# into its event loop after the loop has closed ("Event loop is closed", raised in that thread
# and only printed); what this test checks is that the final checkpoint is written again.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("when", ["in_flight", "landed"])
def test_final_checkpoint_whose_folder_vanished_is_saved_again(tmp_path, when):
    saver = checkpoint.Checkpointer(tmp_path, report=lambda message: None)
    iterator = iter(grain.MapDataset.range(100).to_iter_dataset())
    state = _tiny_state().replace(step=jnp.asarray(7, jnp.int32))
    state = state.replace(params={"w": jnp.full((2, 2), 3.0)})
    saver.save(state, iterator)
    if when == "landed":
        saver.wait()
    shutil.rmtree(tmp_path / "checkpoints", ignore_errors=True)  # races an in-flight save
    saver.finish(state, iterator)
    saver.close()
    assert (tmp_path / "checkpoints" / "7").is_dir()
    np.testing.assert_array_equal(read_state(tmp_path, 7)["params"]["w"], 3.0)


def test_saves_failing_while_a_deletion_is_under_way_are_retried_after_waits(tmp_path, monkeypatch):
    said, waits, failures = [], [], []
    saver = checkpoint.Checkpointer(tmp_path, report=said.append)
    real_save = ocp.CheckpointManager.save

    def save_after_the_deletion(manager, *args, **kwargs):
        if len(failures) < checkpoint.MAX_FAILURES_IN_A_ROW - 1:
            failures.append(None)
            raise FileNotFoundError(f"No such file or directory: '{tmp_path}/checkpoints'")
        return real_save(manager, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", save_after_the_deletion)
    # Only checkpoint's waits: patching time.sleep itself would reach orbax's threads too.
    monkeypatch.setattr(checkpoint, "time", types.SimpleNamespace(sleep=waits.append))
    state = _tiny_state().replace(step=jnp.asarray(5, jnp.int32))
    saver.save(state, iter(grain.MapDataset.range(10).to_iter_dataset()))
    saver.wait()
    saver.close()
    assert waits == [checkpoint.RETRY_SECONDS, 2 * checkpoint.RETRY_SECONDS]
    assert sum("saving step 5 afresh" in line for line in said) == 2
    assert (tmp_path / "checkpoints" / "5").is_dir()


def test_closing_after_failed_saves_reports_and_never_hides_the_runs_error(tmp_path):
    said = []
    saver = checkpoint.Checkpointer(tmp_path, report=said.append)
    real_close = saver.manager.close

    def close_with_an_abandoned_save():
        real_close()
        raise FileNotFoundError("No such file or directory: '.../20.orbax-checkpoint-tmp'")

    saver.manager.close = close_with_an_abandoned_save
    with pytest.raises(checkpoint.CheckpointError, match="could not save"):
        try:
            raise checkpoint.CheckpointError("could not save the checkpoint of step 20")
        finally:
            saver.close()  # as the training loop closes it, in a finally
    assert len(said) == 1 and "20.orbax-checkpoint-tmp" in said[0]


def test_reopening_retries_while_a_deletion_is_still_under_way(tmp_path, monkeypatch):
    saver = checkpoint.Checkpointer(tmp_path, report=lambda message: None)
    opened, calls = saver._open, []

    def open_after_a_vanished_step():
        calls.append(None)
        if len(calls) == 1:  # what orbax raised when a step's folder went while it read it
            raise FileNotFoundError(f"No such file or directory: '{tmp_path}/checkpoints/20'")
        return opened()

    monkeypatch.setattr(saver, "_open", open_after_a_vanished_step)
    monkeypatch.setattr(checkpoint, "time", types.SimpleNamespace(sleep=lambda seconds: None))
    saver._reopen()
    assert len(calls) == 2
    state = _tiny_state().replace(step=jnp.asarray(3, jnp.int32))
    saver.finish(state, iter(grain.MapDataset.range(10).to_iter_dataset()))
    saver.close()
    assert (tmp_path / "checkpoints" / "3").is_dir()

    def never_opens():
        calls.append(None)
        raise PermissionError(f"Permission denied: '{tmp_path}/checkpoints'")

    calls.clear()
    monkeypatch.setattr(saver, "_open", never_opens)
    with pytest.raises(checkpoint.CheckpointError, match="could not reopen .*Permission denied"):
        saver._reopen()
    assert len(calls) == checkpoint.MAX_FAILURES_IN_A_ROW


def test_a_manager_reopened_at_once_keeps_the_next_save(tmp_path, monkeypatch):
    # Each manager removes unfinished saves' temporary folders in a thread of its own. Here the
    # first manager's removal is held back until a save's temporary folder exists, as a busy
    # machine can hold that thread back; not waited for, it would remove the save of step 3.
    real_cleanup, cleanups = checkpoint_manager.temporary_paths.cleanup_temporary_paths, []

    async def cleanup_once_a_save_is_under_way(directory, **kwargs):
        cleanups.append(None)
        if len(cleanups) == 1:
            for _ in range(200):  # up to 2 s, the time this test would otherwise wait
                if list(pathlib.Path(directory).glob("*.orbax-checkpoint-tmp*")):
                    break
                await asyncio.sleep(0.01)
        await real_cleanup(directory, **kwargs)

    monkeypatch.setattr(
        checkpoint_manager.temporary_paths,
        "cleanup_temporary_paths",
        cleanup_once_a_save_is_under_way,
    )
    saver = checkpoint.Checkpointer(tmp_path, report=lambda message: None)
    saver._reopen()
    state = _tiny_state().replace(step=jnp.asarray(3, jnp.int32))
    saver.finish(state, iter(grain.MapDataset.range(10).to_iter_dataset()))
    saver.close()
    assert len(cleanups) == 2
    np.testing.assert_array_equal(read_state(tmp_path, 3)["step"], 3)


def launch(workdir, devices, steps):
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        f"{env['XLA_FLAGS_WITHOUT_DEVICES']} --xla_force_host_platform_device_count={devices}"
    )
    args = [
        "--config",
        "experiments/lenet5_mnist.py",
        "--config.fast_conv=False",
        "--config.batch_size=16",
        "--config.eval_batch_size=200",
        "--config.report=False",
        f"--config.num_train_steps={steps}",
        "--config.checkpoint_every_steps=8",
        "--workdir",
        str(workdir),
    ]
    result = subprocess.run(
        [sys.executable, "launch.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_best_metric_that_the_evaluation_split_never_reports_is_refused(tmp_path):
    config = short_config(best_metric="validation_accuracy")  # lenet5_mnist evaluates 'test'
    with pytest.raises(ValueError, match="not a metric of the evaluation split 'test'"):
        loop.run(config, tmp_path)
    assert not (tmp_path / "checkpoints").exists()  # refused before anything ran


def test_a_run_saved_on_8_devices_resumes_on_1(tmp_path):
    launch(tmp_path / "eight", devices=8, steps=16)
    launch(tmp_path / "one", devices=1, steps=16)
    moved = tmp_path / "moved"
    subprocess.run(["cp", "-r", str(tmp_path / "eight"), str(moved)], check=True)
    subprocess.run(["rm", "-rf", str(moved / "checkpoints" / "16")], check=True)
    launch(moved, devices=1, steps=16)
    assert json.loads((moved / "summary.json").read_text())["resumed_from_step"] == 8
    # Sums over 8 devices and over 1 round differently, so equal up to float error.
    for got, want in zip(
        restore_params(moved, 16), restore_params(tmp_path / "one", 16), strict=True
    ):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_an_evaluation_batch_that_does_not_divide_across_8_devices_counts_every_example(tmp_path):
    """lenet5_mnist's eval_batch_size of 500 on the 8 test devices: the batch grows to 504,
    the last one is padded and masked, and the accuracy is the whole split's."""
    import jax.numpy as jnp

    from jaxconv import data
    from jaxconv.data import pipeline
    from jaxconv.workdir import restore

    config = short_config(eval_batch_size="500", num_train_steps="2")
    assert config.eval_batch_size % 8
    summary = loop.run(config, tmp_path)
    source = data.get_source("mnist_5k", "test")
    run = restore.load_run(tmp_path, num_outputs=10)
    batch = pipeline.normalise_images(
        pipeline.read(source, np.arange(len(source))), config.data.mean, config.data.std
    )
    logits = run.model.apply(run.variables, jnp.asarray(batch["image"]), train=False)
    expected = float(np.mean(np.argmax(logits, -1) == batch["label"]))
    assert summary["test_accuracy"] == pytest.approx(expected, abs=1e-6)


def test_pmap_with_planned_convolutions_and_batch_norm_trains(tmp_path, digits_config, monkeypatch):
    """Planning traces the network outside pmap, where no device axis is bound: its batch
    norm must not average over one there, while the step's does under pmap."""
    from jaxconv.cpu import fast_conv, planning

    monkeypatch.setattr(planning, "measure", lambda *key: (fast_conv.Plan("im2col"), {}))
    monkeypatch.setattr(planning, "measure_network", lambda *args: ("planned", {}))
    config = digits_config(2)
    config.model.name = "resnet8"
    config.parallel.mode = "pmap"
    assert config.fast_conv
    summary = loop.run(config, tmp_path)
    assert summary["parallel"] == "pmap" and np.isfinite(summary["test_loss"])
    assert (tmp_path / "conv_plans.json").exists()
