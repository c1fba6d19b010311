"""Atomic writes that never follow a symbolic link."""

import os
import stat

import pytest

from jaxconv.errors import StorageError, WorkdirError
from jaxconv.workdir import files


def test_a_failed_rewrite_keeps_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    path.write_text('{"good": true}')

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(StorageError, match="No space left on device.*kept"):
        files.write_text(path, '{"new": ' + "1" * 10_000)
    assert path.read_text() == '{"good": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temporary left


@pytest.mark.parametrize(
    "write",
    [
        lambda path: files.write_text(path, "x"),
        lambda path: files.open_for_append(path).close(),
        lambda path: files.open_for_update(path).close(),
    ],
)
def test_a_symlink_is_refused_by_name_and_its_target_untouched(tmp_path, write):
    target = tmp_path / "target.txt"
    target.write_text("keep me")
    link = tmp_path / "summary.json"
    os.symlink(target, link)
    with pytest.raises(WorkdirError, match="summary.json is a symbolic link"):
        write(link)
    assert target.read_text() == "keep me"


def test_written_files_get_the_umasks_mode_not_mkstemps(tmp_path):
    path = tmp_path / "summary.json"
    files.write_json(path, {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == files.FILE_MODE
    assert path.read_text() == '{\n  "a": 1\n}\n'
