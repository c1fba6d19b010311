"""The report's folder: what a build writes there, and what the next build may remove.

A report folder sits inside a run's workdir (or wherever `compare --out` points), and a user
may keep files of their own in it. Each file a build writes is named in the folder's manifest
(`.written`), and a new build removes only the files the manifest names, never a link and
never anything else.
"""

import pathlib

from jaxconv.workdir.files import open_for_append, refuse_link, write_text

MANIFEST = ".written"

__all__ = ["prepare", "record", "refuse_link", "write_page"]


def prepare(folder: pathlib.Path) -> pathlib.Path:
    """Makes `folder` (refused if it is a link) and removes what the previous build wrote."""
    folder = refuse_link(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = refuse_link(folder / MANIFEST)
    if manifest.exists():
        for name in manifest.read_text().splitlines():
            path = folder / name
            if name and "/" not in name and path.is_file() and not path.is_symlink():
                path.unlink()
        write_text(manifest, "")
    return folder


def record(path: pathlib.Path) -> None:
    """Names `path` in its folder's manifest, as a file this build wrote."""
    with open_for_append(path.parent / MANIFEST) as file:
        file.write(path.name + "\n")


def write_page(path: pathlib.Path, text: str) -> pathlib.Path:
    """Writes a page (HTML, Markdown) atomically and records it."""
    write_text(path, text)
    record(path)
    return path
