"""Where a step's time goes: a profiler trace on request, and the wait for input measured in
every logging window."""

import json

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


class Clock:
    """Stands in for the `time` module the loop sees: only what the test moves takes time."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


@pytest.mark.parametrize(
    "input_seconds, step_seconds, bound", [(0.9, 0.1, True), (0.1, 0.9, False)]
)
def test_a_run_that_waits_for_its_input_says_it_is_input_bound(
    tmp_path, digits_config, monkeypatch, capsys, input_seconds, step_seconds, bound
):
    clock = Clock()
    monkeypatch.setattr(loop, "time", clock)
    placed, compiled = parallel.JitStrategy.put_batch, parallel.JitStrategy.compile_train_step

    def slow_input(self, batch):
        clock.now += input_seconds
        return placed(self, batch)

    def slow_step(self, step_fn, **bound_arguments):
        step = compiled(self, step_fn, **bound_arguments)

        def timed(state, batch):
            clock.now += step_seconds
            return step(state, batch)

        return timed

    monkeypatch.setattr(parallel.JitStrategy, "put_batch", slow_input)
    monkeypatch.setattr(parallel.JitStrategy, "compile_train_step", slow_step)
    config = digits_config(6)
    config.fast_conv = False  # no trial steps: every step is the run's
    loop.run(config, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    shares = [r["input_wait_share"] for r in records if "input_wait_share" in r]
    assert shares == pytest.approx([input_seconds] * 6)
    assert [r["step_seconds"] for r in records if "step_seconds" in r] == pytest.approx(
        [step_seconds] * 6
    )
    assert capsys.readouterr().out.count("input-bound") == (1 if bound else 0)  # said once
