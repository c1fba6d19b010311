"""The report writes into its folder only what it names, and removes only what it wrote."""

import os

import pytest

from jaxconv import report
from jaxconv.errors import WorkdirError


def test_a_rebuild_removes_only_the_files_the_last_build_wrote(saved_digits_run):
    report.build(saved_digits_run, max_examples=50)
    folder = saved_digits_run / "report"
    written = set((folder / ".written").read_text().split())
    assert "index.html" in written and any(name.endswith(".png") for name in written)
    (folder / "my_notes.png").write_bytes(b"the user's own figure")
    (folder / "training_curves.png").unlink()
    (folder / ".written").write_text("\n".join([*written, "old_figure.png"]) + "\n")
    (folder / "old_figure.png").write_bytes(b"drawn by an earlier build")

    report.build(saved_digits_run, max_examples=50)
    assert (folder / "my_notes.png").read_bytes() == b"the user's own figure"
    assert not (folder / "old_figure.png").exists()
    assert (folder / "training_curves.png").exists()


def test_a_report_folder_that_is_a_symlink_is_refused_and_its_target_untouched(
    saved_digits_run, tmp_path
):
    elsewhere = tmp_path / "photos"
    elsewhere.mkdir()
    (elsewhere / "holiday.png").write_bytes(b"precious")
    (elsewhere / ".written").write_text("holiday.png\n")
    linked = tmp_path / "linked_run"
    linked.mkdir()
    for name in ("config.json", "metrics.jsonl", "checkpoints"):
        os.symlink(saved_digits_run / name, linked / name)
    os.symlink(elsewhere, linked / "report")
    with pytest.raises(WorkdirError, match="report is a symbolic link"):
        report.build(linked, max_examples=50)
    assert (elsewhere / "holiday.png").read_bytes() == b"precious"
