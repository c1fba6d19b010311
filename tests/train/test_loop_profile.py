"""Where a step's time goes: a profiler trace on request, and the wait for input measured in
every logging window."""

import json
import time

import pytest

from jaxconv.configs import checks
from jaxconv.errors import ConfigError
from jaxconv.report import curves
from jaxconv.train import loop, parallel


def test_a_trace_of_the_requested_steps_is_written(tmp_path, digits_config, capsys):
    config = digits_config(6)
    config.profile_steps = "2:4"
    loop.run(config, tmp_path)
    traces = list((tmp_path / "profile").rglob("*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 0
    assert "Profile of steps 3-4 written to" in capsys.readouterr().out


@pytest.mark.parametrize("text", ["4:2", "3", "a:b", "-1:3", "2:2"])
def test_a_malformed_profile_window_is_refused(text, digits_config):
    config = digits_config(2)
    config.profile_steps = text
    with pytest.raises(ConfigError, match="profile_steps"):
        checks.check(config)


def test_every_window_logs_its_wait_for_input_and_its_step_time(tmp_path, digits_config):
    loop.run(digits_config(6), tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    windows = [r for r in records if "input_seconds" in r]
    assert len(windows) == 6
    for record in windows:
        assert record["input_seconds"] >= 0 and record["step_seconds"] > 0
        assert 0 <= record["input_wait_share"] <= 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert 0 <= summary["input_wait_share"] <= 1
    titles = [panel.title for panel in curves.run_panels(records)]
    assert "seconds per step: waiting for input, in the step" in titles


def test_a_run_that_waits_for_its_input_says_it_is_input_bound(
    tmp_path, digits_config, monkeypatch, capsys
):
    placed = parallel.JitStrategy.put_batch

    def slow(self, batch):
        time.sleep(0.05)  # far longer than the MLP's step
        return placed(self, batch)

    monkeypatch.setattr(parallel.JitStrategy, "put_batch", slow)
    loop.run(digits_config(6), tmp_path)
    out = capsys.readouterr().out
    assert out.count("input-bound") == 1  # said once
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["input_wait_share"] > 0.5
