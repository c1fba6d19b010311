"""Fault injection: kills, signals, broken checkpoints, full and read-only disks, NaNs.

Each ends in the documented behaviour with no good checkpoint lost.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxconv.workdir.checkpoint import read_state

ROOT = pathlib.Path(__file__).resolve().parents[2]
# LeNet-5 with augmentation on, small batches, a checkpoint every 5 steps; XLA's convolutions
# (what the planned ones do on resume is tested in tests/test_launch.py).
RUN = [
    "--config",
    "experiments/lenet5_mnist.py",
    "--config.fast_conv=False",
    "--config.batch_size=16",
    "--config.eval_batch_size=200",
    "--config.report=False",
    "--config.log_every_steps=5",
    "--config.checkpoint_every_steps=5",
    "--config.eval_every_steps=20",
]


def command(workdir, steps):
    return [
        sys.executable,
        "launch.py",
        *RUN,
        f"--config.num_train_steps={steps}",
        "--workdir",
        str(workdir),
    ]


def launch(workdir, steps, check=True):
    result = subprocess.run(
        command(workdir, steps), cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    if check and result.returncode:
        raise AssertionError(f"launch.py failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def start(workdir, steps):
    """launch.py in the background; PYTHONFAULTHANDLER lets `wait_for_exit` read its stacks."""
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    return subprocess.Popen(
        command(workdir, steps),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_exit(process, timeout):
    """The run's stderr once it ends; a run still going after `timeout` seconds is aborted and
    the test fails with every thread's stack, so a hang says where it hung."""
    try:
        return process.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        stderr = process.communicate()[1]
        # Every thread's stack, from faulthandler's header on: the thread a hang waits for is
        # rarely the last one listed.
        header = stderr.rfind("Fatal Python error")
        stacks = stderr[header:][:40000] if header >= 0 else stderr[-6000:]
        pytest.fail(f"launch.py still running after {timeout} s; its stacks:\n{stacks}")


def final_state(workdir, step):
    return ocp.tree.to_flat_dict(read_state(workdir, step))


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=str(key))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 40-step run."""
    workdir = tmp_path_factory.mktemp("reference")
    launch(workdir, 40)
    return final_state(workdir, 40)


def wait_for_checkpoint(workdir, step, process, timeout=300):
    target = pathlib.Path(workdir) / "checkpoints" / str(step)
    deadline = time.monotonic() + timeout
    while not target.exists():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, f"no checkpoint {step} after {timeout} s"
        time.sleep(0.02)


@pytest.mark.parametrize("kill_signal", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_identical_parameters(tmp_path, reference, kill_signal):
    kill_after = int(np.random.default_rng().choice([5, 10, 15, 20, 25]))
    process = start(tmp_path, 40)
    wait_for_checkpoint(tmp_path, kill_after, process)
    process.send_signal(kill_signal)
    stderr = wait_for_exit(process, 120)
    if process.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    if kill_signal == signal.SIGTERM:
        assert process.returncode == 128 + signal.SIGTERM, stderr
        assert "run the same command to resume" in stderr
    assert not (tmp_path / "summary.json").exists()

    launch(tmp_path, 40)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert 0 < summary["resumed_from_step"] < 40
    assert_same_state(final_state(tmp_path, 40), reference)


def test_truncated_checkpoint_is_reported_and_the_previous_one_used(tmp_path, reference):
    launch(tmp_path, 40)
    newest = tmp_path / "checkpoints" / "40" / "state"
    largest = max((p for p in newest.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    largest.write_bytes(largest.read_bytes()[: largest.stat().st_size // 2])

    result = launch(tmp_path, 40)
    assert "Checkpoint at step 40 is unreadable" in result.stderr + result.stdout
    assert (tmp_path / "checkpoints" / "unreadable_40").is_dir()  # kept, not deleted
    assert json.loads((tmp_path / "summary.json").read_text())["resumed_from_step"] == 35
    assert_same_state(final_state(tmp_path, 40), reference)


def test_second_run_on_a_busy_workdir_refuses(tmp_path):
    process = start(tmp_path, 400)
    try:
        wait_for_checkpoint(tmp_path, 5, process)
        second = launch(tmp_path, 400, check=False)
        assert second.returncode == 1
        assert "is in use by a running job" in second.stderr
        assert f"pid {process.pid}" in second.stderr
    finally:
        process.kill()
        process.wait()


def _mount_tmpfs(path, options):
    path.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")


@pytest.fixture
def small_disk(tmp_path):
    """A 1.5 MB file system: room for the run's first checkpoints, not for many more."""
    path = tmp_path / "small"
    _mount_tmpfs(path, "size=1536k")
    yield path
    subprocess.run(["umount", "-l", str(path)])


def test_full_disk_stops_with_a_clear_error_and_keeps_complete_checkpoints(small_disk):
    result = subprocess.run(
        command(small_disk, 40) + ["--config.keep_checkpoints=10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "could not save the checkpoint" in result.stderr or "save" in result.stderr
    assert "No space left" in result.stderr or "space" in result.stderr.lower()
    complete = sorted(
        int(p.name) for p in (small_disk / "checkpoints").iterdir() if p.name.isdigit()
    )
    assert complete, "no checkpoint survived"
    state = final_state(small_disk, complete[-1])  # the newest complete one reads back
    assert all(np.all(np.isfinite(np.asarray(v))) for v in state.values())


@pytest.fixture
def read_only_dir(tmp_path):
    path = tmp_path / "readonly"
    _mount_tmpfs(path, "ro,size=64k")
    yield path
    subprocess.run(["umount", "-l", str(path)])


def test_read_only_workdir_is_refused_before_training(read_only_dir):
    result = launch(read_only_dir / "run", 10, check=False)
    assert result.returncode == 1
    assert "is not writable" in result.stderr and "Traceback" not in result.stderr


def test_checkpoint_folder_deleted_mid_run_is_recreated(tmp_path):
    process = start(tmp_path, 60)
    wait_for_checkpoint(tmp_path, 10, process)
    for _ in range(20):  # a save writing into the folder can race a single rm
        if subprocess.run(["rm", "-rf", str(tmp_path / "checkpoints")]).returncode == 0:
            break
    # A deletion racing the next save's folder creation made orbax, creating folders in the
    # background, wait out its 300 s coordination timeout (2 of 12 runs deleting for 2 s);
    # the folders are now made before save() returns, which raises instead (0 of 12).
    stderr = wait_for_exit(process, 240)
    assert process.returncode == 0, stderr[-2000:]
    assert (tmp_path / "checkpoints" / "60").is_dir()
