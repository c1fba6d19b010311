"""launch.py end to end, in subprocesses as a user runs it (with the 8 test devices)."""

import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys

import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxconv.workdir.checkpoint import read_state

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHORT = [
    "--config",
    "experiments/lenet5_mnist.py",
    "--config.batch_size=16",
    "--config.eval_batch_size=200",
    "--config.report=False",
    "--config.log_every_steps=2",
]


def launch(*args, check=True):
    result = subprocess.run(
        [sys.executable, "launch.py", *args],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and result.returncode:
        raise AssertionError(f"launch.py failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def tensorboard_tags(workdir: pathlib.Path) -> dict[str, set[str]]:
    """{'scalar': tags, 'image': tags} read back from the run's event files (TFRecord framing:
    length, its CRC, the serialised Event, its CRC)."""
    from tensorboardX.proto import event_pb2

    tags = {"scalar": set(), "image": set()}
    for path in (workdir / "tensorboard").glob("events.out.tfevents.*"):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                tags["image" if value.HasField("image") else "scalar"].add(value.tag)
    return tags


def load_state(workdir: pathlib.Path, step: int) -> dict:
    return read_state(workdir, step)


def test_short_run_writes_metrics_checkpoints_and_summary(tmp_path):
    launch(
        *SHORT,
        "--workdir",
        str(tmp_path),
        "--config.num_train_steps=6",
        "--config.checkpoint_every_steps=3",
    )
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "train_loss" in r]
    assert [r["step"] for r in train] == [2, 4, 6]
    assert all(np.isfinite(r["train_loss"]) and r["images_per_second"] > 0 for r in train)
    assert any("test_accuracy" in r for r in records)
    tags = tensorboard_tags(tmp_path)
    assert {"train_loss", "learning_rate", "images_per_second", "test_accuracy"} <= tags["scalar"]
    assert tags["image"] == {"predictions/classification"}
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [
        "3",
        "6",
    ]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["num_params"] == 61706
    assert 0.0 <= summary["test_accuracy"] <= 1.0


def test_restart_resumes_from_the_newest_checkpoint_bit_for_bit(tmp_path):
    steps = ["--config.num_train_steps=8", "--config.checkpoint_every_steps=4"]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    launch(*SHORT, *steps, "--workdir", str(straight))
    launch(*SHORT, *steps, "--workdir", str(interrupted))
    # As if the run had been killed after saving step 4: its step-8 checkpoint never existed.
    for path in (interrupted / "checkpoints" / "8",):
        subprocess.run(["rm", "-rf", str(path)], check=True)
    (interrupted / "summary.json").unlink()

    launch(*SHORT, *steps, "--workdir", str(interrupted))
    summary = json.loads((interrupted / "summary.json").read_text())
    assert summary["resumed_from_step"] == 4
    expected, resumed = load_state(straight, 8), load_state(interrupted, 8)
    leaves = zip(ocp.tree.to_flat_dict(expected).items(), ocp.tree.to_flat_dict(resumed).items())
    for (name, want), (_, got) in leaves:
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=str(name))
    # The interrupted run's log reads as one run: no step logged twice.
    logged = [
        json.loads(line)["step"]
        for line in (interrupted / "metrics.jsonl").read_text().splitlines()
        if "train_loss" in line
    ]
    assert logged == [2, 4, 6, 8]


@pytest.mark.parametrize(
    ("override", "named", "suggested"),
    [
        ("--config.optimizr.lr=1", "optimizr.lr", "learning_rate"),
        ("--config.optimizer.weight_dcay=0", "optimizer.weight_dcay", "optimizer.weight_decay"),
    ],
)
def test_typo_in_an_override_stops_before_anything_runs(tmp_path, override, named, suggested):
    workdir = tmp_path / "run"
    result = launch(*SHORT, "--workdir", str(workdir), override, check=False)
    assert result.returncode == 2
    assert f"'{named}'" in result.stderr and f"'{suggested}'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not workdir.exists()


def test_missing_config_file_is_named(tmp_path):
    result = launch(
        "--config", "experiments/lenet5_mnsit.py", "--workdir", str(tmp_path / "r"), check=False
    )
    assert result.returncode == 2
    assert "experiments/lenet5_mnsit.py" in result.stderr and "does not exist" in result.stderr
    assert "lenet5_mnist.py" in result.stderr


def test_summary_prints_the_model_table_without_training(tmp_path):
    result = launch("--config", "experiments/lenet5_mnist.py", "--summary")
    assert "61,706" in result.stdout or "61706" in result.stdout


@pytest.fixture(scope="module")
def digits_workdir(tmp_path_factory):
    from jaxconv.configs import base
    from jaxconv.train import loop

    config = base.get_config()
    config.data.name, config.model.name = "digits", "mlp"
    config.batch_size, config.num_train_steps, config.report = 16, 2, False
    workdir = tmp_path_factory.mktemp("digits") / "run"
    loop.run(config, workdir)
    return workdir


def one_line_error(result) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    (line,) = [line for line in result.stderr.splitlines() if "error:" in line]
    return line


@pytest.mark.parametrize(
    "verb",
    [
        ["report", "--workdir", "{run}"],
        ["export", "--workdir", "{run}", "--out", "{tmp}/model"],
        ["compare", "{run}", "--out", "{tmp}/compare"],
    ],
)
def test_a_damaged_config_json_is_one_line_naming_it(digits_workdir, tmp_path, verb):
    broken = tmp_path / "broken"
    shutil.copytree(digits_workdir, broken)
    (broken / "config.json").write_text('{"model": {"name": "lenet5"')  # cut short
    args = [part.format(run=broken, tmp=tmp_path) for part in verb]
    line = one_line_error(launch(*args, check=False))
    assert "config.json" in line and line.startswith(f"launch.py {verb[0]}: error:")


def test_export_into_the_workdir_itself_is_refused(digits_workdir):
    result = launch(
        "export", "--workdir", str(digits_workdir), "--out", str(digits_workdir), check=False
    )
    assert "is the workdir" in one_line_error(result)
    assert (digits_workdir / "config.json").read_text().startswith("{")


def test_a_config_file_that_raises_is_one_line(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("raise RuntimeError('oops')\n")
    result = launch("--config", str(path), "--workdir", str(tmp_path / "run"), check=False)
    assert result.returncode == 2
    assert "broken.py' fails as it is read" in one_line_error(result)


def test_a_bug_in_the_library_keeps_its_traceback(tmp_path, monkeypatch):
    import launch as launcher
    from jaxconv.train import loop

    def bug(config, workdir):
        raise KeyError("an internal key")

    monkeypatch.setattr(loop, "run", bug)
    args = ["--config", "experiments/lenet5_mnist.py", "--workdir", str(tmp_path)]
    with pytest.raises(KeyError, match="an internal key"):
        launcher.main(args)
