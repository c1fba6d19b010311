"""Writing a run's files safely: atomically, and never through a symbolic link.

A workdir is the user's, and so may be a link to another disk; the files inside it are
jaxconv's. A file replaced in place is written to a temporary file beside it and renamed over
it, so a full disk or a killed process leaves the old file whole. An entry inside the workdir
that is a symbolic link is refused by name: writing through it would overwrite its target.
"""

import contextlib
import json
import os
import pathlib
import tempfile

from jaxconv.errors import StorageError, WorkdirError


def _file_mode() -> int:
    """What a newly created file gets under this process's umask (mkstemp gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def refuse_link(path: str | pathlib.Path) -> pathlib.Path:
    """`path`, after checking that it is not a symbolic link (WorkdirError if it is)."""
    path = pathlib.Path(path)
    if path.is_symlink():
        raise WorkdirError(
            f"{path} is a symbolic link (to {os.readlink(path)}); jaxconv writes only its own "
            "files inside a workdir. Remove the link, or choose another --workdir."
        )
    return path


def write_text(path: str | pathlib.Path, text: str) -> None:
    """Replaces the file at `path` with `text` atomically: readers see the old file or the
    new one, never a part (a temporary file in the same folder, synced, then renamed)."""
    write_bytes(path, text.encode())


def write_bytes(path: str | pathlib.Path, data: bytes) -> None:
    """`write_text` for bytes."""
    path = refuse_link(path)
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            os.fchmod(descriptor, FILE_MODE)
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as error:
        raise StorageError(
            f"could not write {path} ({error.strerror or error}); the file as it was is kept."
        ) from error


def write_json(path: str | pathlib.Path, value) -> None:
    write_text(path, json.dumps(value, indent=2) + "\n")


def open_for_append(path: str | pathlib.Path):
    """A text file opened for appending, created if missing, refused if it is a link."""
    return _open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, "a")


def open_for_update(path: str | pathlib.Path):
    """A text file opened for reading and writing, created if missing, refused if a link."""
    return _open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, "r+")


def _open(path, flags: int, mode: str):
    path = refuse_link(path)
    try:
        return os.fdopen(os.open(path, flags, 0o644), mode)
    except OSError as error:
        raise StorageError(f"could not open {path} ({error.strerror or error}).") from error
