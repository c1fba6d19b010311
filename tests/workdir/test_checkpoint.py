"""Verified checkpoints: every array's checksum is saved with it, and a restore that reads
other values sets the checkpoint aside, names the array and falls back to the one before."""

import hashlib
import json

import numpy as np
import pytest

from jaxconv.errors import CheckpointError
from jaxconv.train import loop
from jaxconv.workdir import checkpoint, export
from jaxconv.workdir.checkpoint import CorruptCheckpointError, read_state


def trained(tmp_path, digits_config, steps=4):
    """A digits run with checkpoints at steps 2 and 4."""
    loop.run(digits_config(steps), tmp_path / "run")
    return tmp_path / "run"


def saved_checksums(workdir, step):
    return json.loads((workdir / "checkpoints" / str(step) / "checksums" / "metadata").read_text())


def test_each_array_is_saved_with_its_sha256(tmp_path, digits_config):
    workdir = trained(tmp_path, digits_config)
    sums = saved_checksums(workdir, 4)
    state = read_state(workdir, 4)
    kernel = np.asarray(state["params"]["hidden1"]["kernel"])
    assert sums["params/hidden1/kernel"] == {
        "dtype": "float32",
        "shape": list(kernel.shape),
        "sha256": hashlib.sha256(np.ascontiguousarray(kernel).tobytes()).hexdigest(),
    }
    assert {"step", "rng", "params/head/bias"} <= set(sums)


def test_a_checkpoint_whose_values_changed_is_set_aside_and_the_previous_one_restored(
    tmp_path, digits_config, capsys
):
    workdir = trained(tmp_path, digits_config)
    before = read_state(workdir, 2)
    # The bytes of one array changed on disk: its stored checksum no longer matches. (Written
    # into the checksum file, the change reads back exactly: orbax's format is not involved.)
    sums = saved_checksums(workdir, 4)
    sums["params/hidden1/kernel"]["sha256"] = "0" * 64
    (workdir / "checkpoints" / "4" / "checksums" / "metadata").write_text(json.dumps(sums))

    summary = loop.run(digits_config(4), workdir)
    assert summary["resumed_from_step"] == 2
    out = capsys.readouterr().out
    assert "Checkpoint at step 4 is unreadable" in out
    assert "does not match its checksums: params/hidden1/kernel" in out
    assert (workdir / "checkpoints" / "unreadable_4").is_dir()  # kept for inspection
    assert (workdir / "checkpoints" / "4").is_dir()  # trained again from step 2
    assert not np.array_equal(read_state(workdir, 4)["params"]["hidden1"]["kernel"], 0)
    assert int(before["step"]) == 2


def test_random_bytes_in_the_newest_data_file_never_reach_the_model(tmp_path, digits_config):
    """64 random bytes in the newest checkpoint's largest file: the run goes on from the
    checkpoint before, whether orbax cannot read the file or the checksums catch the values."""
    workdir = trained(tmp_path, digits_config)
    state_folder = workdir / "checkpoints" / "4" / "state"
    largest = max(
        (p for p in state_folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )
    data = bytearray(largest.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = np.random.default_rng(0).bytes(64)
    largest.write_bytes(bytes(data))

    summary = loop.run(digits_config(4), workdir)
    assert summary["resumed_from_step"] == 2
    assert (workdir / "checkpoints" / "unreadable_4").is_dir()


def test_reading_a_corrupt_checkpoint_for_export_names_the_array_and_the_others(
    tmp_path, digits_config
):
    workdir = trained(tmp_path, digits_config)
    sums = saved_checksums(workdir, 4)
    sums["params/head/kernel"]["sha256"] = "f" * 64
    (workdir / "checkpoints" / "4" / "checksums" / "metadata").write_text(json.dumps(sums))
    with pytest.raises(CorruptCheckpointError, match="params/head/kernel.*steps 2"):
        read_state(workdir)
    with pytest.raises(CorruptCheckpointError):
        export.export_run(workdir, tmp_path / "model")
    assert not (tmp_path / "model").exists()
    assert int(read_state(workdir, 2)["step"]) == 2  # the older one still reads


def test_when_every_checkpoint_is_corrupt_the_run_stops_and_keeps_them(tmp_path, digits_config):
    workdir = trained(tmp_path, digits_config)
    for step in (2, 4):
        sums = saved_checksums(workdir, step)
        sums["rng"]["sha256"] = "0" * 64
        (workdir / "checkpoints" / str(step) / "checksums" / "metadata").write_text(
            json.dumps(sums)
        )
    with pytest.raises(CheckpointError, match="every checkpoint .* fails its checksums"):
        loop.run(digits_config(4), workdir)
    assert {p.name for p in (workdir / "checkpoints").iterdir() if p.is_dir()} >= {
        "unreadable_2",
        "unreadable_4",
    }


def test_checksums_name_nested_arrays_by_their_path():
    tree = {"params": {"conv": {"kernel": np.ones((2, 2), np.float32)}}, "step": np.int32(3)}
    sums = checkpoint.checksums(tree)
    assert set(sums) == {"params/conv/kernel", "step"}
    changed = {"params": {"conv": {"kernel": np.full((2, 2), 2, np.float32)}}, "step": np.int32(3)}
    with pytest.raises(CorruptCheckpointError, match="params/conv/kernel"):
        checkpoint.verify(7, changed, sums)
    checkpoint.verify(7, tree, sums)  # the same values pass


def test_an_array_read_back_in_another_dtype_does_not_fit_and_is_no_corruption():
    tree = {"params": {"w": np.ones((2, 3), np.float32)}}
    sums = checkpoint.checksums(tree)
    cast = {"params": {"w": np.ones((2, 3), np.float16)}}
    with pytest.raises(CheckpointError, match="params/w \\(float32 \\(2, 3\\) on disk\\)") as error:
        checkpoint.verify(7, cast, sums)
    assert not isinstance(error.value, CorruptCheckpointError)
