"""What a resume may change, what it refuses, and what a run leaves on disk when it stops.

In-process runs of the 8x8 digits MLP (tests/conftest.py: digits_config), seconds each.
"""

import json
import os

import pytest

from jaxconv.errors import CheckpointError, ConfigError, NonFiniteError, WorkdirError
from jaxconv.train import loop
from jaxconv.workdir import writers


def files_of(workdir):
    """{relative path: bytes} of every regular file in the run (checkpoints included)."""
    found = {}
    for path in sorted(workdir.rglob("*")):
        if path.is_file() and not path.is_symlink():
            found[str(path.relative_to(workdir))] = path.read_bytes()
    return found


@pytest.mark.parametrize(
    "key, value, shown",
    [
        ("batch_size", 32, "batch_size: 16 -> 32"),
        ("learning_rate", 0.5, "learning_rate: 0.001 -> 0.5"),
        ("model.hidden_sizes", (64,), "model.hidden_sizes"),
        ("data.augment", "flip_horizontal", "data.augment: '' -> 'flip_horizontal'"),
        ("seed", 3, "seed: 0 -> 3"),
    ],
)
def test_a_resume_with_another_recipe_is_refused_with_the_diff_and_writes_nothing(
    tmp_path, digits_config, key, value, shown
):
    loop.run(digits_config(2), tmp_path)
    before = files_of(tmp_path)
    config = digits_config(4)
    *parents, leaf = key.split(".")
    node = config
    for name in parents:
        node = node[name]
    node[leaf] = value
    with pytest.raises(ConfigError, match="resume_changes=allow") as error:
        loop.run(config, tmp_path)
    assert shown in str(error.value)
    assert files_of(tmp_path) == before


def test_keys_a_resume_may_change_pass_and_an_allowed_change_is_recorded(tmp_path, digits_config):
    loop.run(digits_config(2), tmp_path)
    longer = digits_config(4)
    longer.log_every_steps = 2  # resumable: how long and how often
    assert loop.run(longer, tmp_path)["resumed_from_step"] == 2

    changed = digits_config(6)
    changed.log_every_steps = 2
    changed.learning_rate = 0.01
    changed.resume_changes = "allow"
    loop.run(changed, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "config_changes.jsonl").open()]
    assert records == [  # every change is recorded, the resumable ones too
        {"step": 2, "changes": {"log_every_steps": [1, 2], "num_train_steps": [2, 4]}},
        {
            "step": 4,
            "changes": {
                "learning_rate": [0.001, 0.01],
                "num_train_steps": [4, 6],
                "resume_changes": ["refuse", "allow"],
            },
        },
    ]
    assert json.loads((tmp_path / "config.json").read_text())["learning_rate"] == 0.01


def test_a_workdir_of_an_older_default_coin_reference_still_resumes(tmp_path, digits_config):
    # The coin job's settings are outside training: a change there never blocks a resume.
    loop.run(digits_config(2), tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved["detection"]["reference_path"] = "tests/data/coins_centres.json"
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert loop.run(digits_config(4), tmp_path)["resumed_from_step"] == 2


def test_a_checkpoint_that_does_not_fit_leaves_config_json_as_it_was(tmp_path, digits_config):
    loop.run(digits_config(2), tmp_path)
    saved = (tmp_path / "config.json").read_bytes()
    other = digits_config(4)
    other.model.hidden_sizes = (7,)
    other.resume_changes = "allow"  # accepted as a config change; the checkpoint cannot fit
    with pytest.raises(CheckpointError, match="fits this run"):
        loop.run(other, tmp_path)
    assert (tmp_path / "config.json").read_bytes() == saved
    assert not (tmp_path / "config_changes.jsonl").exists()


def test_resuming_with_fewer_steps_than_trained_is_refused(tmp_path, digits_config):
    loop.run(digits_config(4), tmp_path)
    with pytest.raises(ConfigError, match="at step 4, past this config's 2 steps"):
        loop.run(digits_config(2), tmp_path)


def test_a_finished_run_started_again_keeps_its_training_timings(tmp_path, digits_config):
    first = loop.run(digits_config(4), tmp_path)
    again = loop.run(digits_config(4), tmp_path)
    assert first["train_time_s"] > 0
    for key in ("train_time_s", "train_images_per_s", "resumed_from_step"):
        assert again[key] == first[key], key
    assert json.loads((tmp_path / "summary.json").read_text())["train_time_s"] > 0


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # on purpose
@pytest.mark.parametrize("share, fails", [(0.05, True), (1.0, False)])
def test_a_run_that_skipped_more_than_its_share_of_steps_ends_with_an_error(
    tmp_path, digits_config, share, fails
):
    config = digits_config(4)
    config.data.std = 1e-40  # inputs beyond float32: every loss is non-finite
    config.on_nonfinite = "skip"
    config.max_skipped_share = share
    if fails:
        with pytest.raises(NonFiniteError, match="4 of this run's 4 steps"):
            loop.run(config, tmp_path)
    else:
        loop.run(config, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["skipped_steps"] == 4
    assert (tmp_path / "checkpoints" / "4").is_dir()  # saved before the error


def test_a_failure_while_closing_never_hides_the_error_that_stopped_the_run(
    tmp_path, digits_config, monkeypatch
):
    def disk_full(self, start_step):
        raise CheckpointError("could not save the checkpoint of step 1: disk full")

    def close_fails(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(loop._Run, "_train", disk_full)
    monkeypatch.setattr(writers.MetricWriter, "close", close_fails)
    with pytest.raises(CheckpointError, match="disk full"):
        loop.run(digits_config(2), tmp_path)


def test_a_partial_last_metrics_line_is_cut_at_resume_and_named(tmp_path, digits_config, capsys):
    loop.run(digits_config(2), tmp_path)
    metrics = tmp_path / "metrics.jsonl"
    with metrics.open("a") as file:
        file.write('{"step": 3, "train_lo')  # what a full disk leaves
    loop.run(digits_config(4), tmp_path)
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in records if "train_loss" in r] == [1, 2, 3, 4]
    assert "metrics.jsonl: cut its partial last line" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["config.json", ".lock", "summary.json", "metrics.jsonl"])
def test_a_workdir_entry_that_is_a_symlink_is_refused_and_its_target_untouched(
    tmp_path, digits_config, name
):
    target = tmp_path / "precious.txt"
    target.write_text("the user's own file")
    workdir = tmp_path / "run"
    workdir.mkdir()
    os.symlink(target, workdir / name)
    with pytest.raises(WorkdirError, match=f"{name} is a symbolic link"):
        loop.run(digits_config(2), workdir)
    assert target.read_text() == "the user's own file"


@pytest.mark.parametrize(
    "key, value, named",
    [
        ("batch_size", 0, "batch_size=0"),
        ("batch_size", -16, "batch_size=-16"),
        ("eval_batch_size", 0, "eval_batch_size=0"),
        ("num_microbatches", 0, "num_microbatches=0"),
        ("keep_checkpoints", 0, "keep_checkpoints=0"),
        ("keep_checkpoints", -1, "keep_checkpoints=-1"),
        ("learning_rate", -0.1, "learning_rate=-0.1"),
        ("learning_rate", float("inf"), "learning_rate=inf"),
        ("num_train_steps", 0, "num_train_steps=0"),
    ],
)
def test_out_of_range_settings_stop_before_anything_is_written(
    tmp_path, digits_config, key, value, named
):
    config = digits_config(2)
    config[key] = value
    with pytest.raises(ConfigError, match=named):
        loop.run(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
