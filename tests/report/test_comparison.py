"""`report.compare` on runs of different lengths, with metrics missing here and there."""

import json
import pathlib
import re
import subprocess
import sys

from PIL import Image

from jaxconv import report

ROOT = pathlib.Path(__file__).resolve().parents[2]


def write_run(workdir, records, summary=None):
    workdir.mkdir(parents=True)
    (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if summary is not None:
        (workdir / "summary.json").write_text(json.dumps(summary))
    return workdir


def train(steps):
    return [{"step": step, "train_loss": 1.0 / step, "learning_rate": 0.1} for step in steps]


def test_compare_runs_of_different_lengths_and_metrics(tmp_path):
    long_run = write_run(
        tmp_path / "resnet56",
        [*train(range(10, 1001, 10)), {"step": 500, "test_accuracy": 0.8}]
        + [{"step": 1000, "test_accuracy": 0.9, "test_loss": 0.3}],
        {"test_accuracy": 0.91, "wall_time_s": 120.5, "model": "resnet56", "steps": 1000},
    )
    short_run = write_run(tmp_path / "plain56", train(range(10, 301, 10)))  # unfinished
    empty_run = write_run(tmp_path / "starting", [])
    out = tmp_path / "comparison"

    page_path = report.compare([long_run, short_run, empty_run], out)

    assert page_path == out / "compare.html"
    page = page_path.read_text()
    assert "http://" not in page and "https://" not in page
    assert re.findall(r'<img src="data:image/png;base64,', page)
    with Image.open(out / "compare.png") as image:
        image.load()
        assert image.size[0] == 1050
    table = (out / "compare.md").read_text().splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    rows = {line.split("|")[1].strip(): line for line in table[2:]}
    assert set(rows) == {"resnet56", "plain56", "starting"}
    assert "test accuracy" in header and "wall time (s)" in header
    assert "0.91" in rows["resnet56"]  # summary.json wins over the last evaluation
    assert "120.5" in rows["resnet56"]
    assert "—" in rows["plain56"] and "300" in rows["plain56"]  # steps so far, no evaluation


def test_compare_runs_sharing_a_folder_name(tmp_path):
    first = write_run(tmp_path / "a" / "run", train([1, 2]))
    second = write_run(tmp_path / "b" / "run", train([1, 2, 3]))
    report.compare([first, second], tmp_path / "out")
    table = (tmp_path / "out" / "compare.md").read_text()
    assert "| a/run |" in table and "| b/run |" in table


def test_compare_runs_without_metrics_writes_the_table_only(tmp_path):
    run = write_run(tmp_path / "new", [])
    page = report.compare([run], tmp_path / "out").read_text()
    assert "<img" not in page and "has logged metrics yet" in page
    assert not (tmp_path / "out" / "compare.png").exists()
    assert "| new |" in (tmp_path / "out" / "compare.md").read_text()


def test_launch_compare_writes_the_comparison(tmp_path):
    first = write_run(tmp_path / "resnet20", train([1, 2, 3]), {"test_accuracy": 0.9})
    second = write_run(tmp_path / "plain20", train([1, 2]))
    out = tmp_path / "out"
    command = [sys.executable, "launch.py", "compare", str(first), str(second), "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert str(out / "compare.html") in result.stdout
    table = (out / "compare.md").read_text()
    assert "| resnet20 |" in table and "| plain20 |" in table


def test_launch_compare_names_a_missing_workdir(tmp_path):
    command = [sys.executable, "launch.py", "compare", str(tmp_path / "nowhere")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "no such workdir" in result.stderr and "nowhere" in result.stderr
