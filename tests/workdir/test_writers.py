"""metrics.jsonl survives what a full disk or a kill leaves in it."""

import json

import pytest

from jaxconv.errors import DataError
from jaxconv.workdir import writers


def write_lines(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_a_partial_last_line_is_cut_and_reported_once(tmp_path):
    path = tmp_path / "metrics.jsonl"
    write_lines(path, [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}])
    with path.open("a") as file:
        file.write('{"step": 3, "lo')
    said = []
    writers._drop_after(path, 2, said.append)
    assert [r["step"] for r in writers.read_metrics(tmp_path)] == [1, 2]
    assert path.read_text().endswith("}\n")
    assert len(said) == 1 and "metrics.jsonl" in said[0] and "partial last line" in said[0]


def test_a_record_cut_just_before_its_newline_is_kept_and_the_file_mended(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}')  # the newline never written
    writers._drop_after(path, 2, print)
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n'
    with path.open("a") as file:
        file.write('{"step": 3}\n')
    assert [r["step"] for r in writers.read_metrics(tmp_path)] == [1, 2, 3]


def test_records_after_the_restored_step_are_dropped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    write_lines(path, [{"step": s} for s in (1, 2, 3, 4)])
    writers._drop_after(path, 2, print)
    assert [r["step"] for r in writers.read_metrics(tmp_path)] == [1, 2]


def test_a_damaged_line_before_the_last_is_named_with_the_fix(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(DataError, match="metrics.jsonl line 2 is damaged.*delete that line"):
        writers._drop_after(path, 3, print)


def test_the_report_reads_the_complete_records_of_a_cut_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "tr')
    assert writers.read_metrics(tmp_path) == [{"step": 1}]
