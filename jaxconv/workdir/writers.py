"""Metrics to JSON lines (`metrics.jsonl`) and TensorBoard event files (`tensorboard/`).

Only process 0 writes. On resume, lines logged after the restored checkpoint's step (by the run
that was interrupted) are dropped, so the file reads as one uninterrupted run, and a partial
last line (what a full disk or a kill mid-write leaves) is cut, with one line saying so.
"""

import json
import pathlib

import jax
import numpy as np

from jaxconv.errors import DataError, StorageError
from jaxconv.workdir import files

MAX_QUEUED_EVENTS = 100_000


class MetricWriter:
    def __init__(self, workdir: str | pathlib.Path, *, resume_step: int = 0, report=print):
        self.enabled = jax.process_index() == 0
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        self._tensorboard = None
        if not self.enabled:
            return
        _drop_after(self.path, resume_step, report)
        from tensorboardX import SummaryWriter

        # tensorboardX writes from a thread that dies on a full disk; with its default queue of
        # 10 events the run would then block forever on the 11th. This queue outlasts the run
        # until the next checkpoint save reports the disk.
        try:
            self._tensorboard = SummaryWriter(
                str(pathlib.Path(workdir) / "tensorboard"),
                purge_step=resume_step or None,
                max_queue=MAX_QUEUED_EVENTS,
            )
        except OSError as error:
            raise StorageError(
                f"could not write TensorBoard's files in {workdir} ({error.strerror or error})."
            ) from error

    def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        try:
            with files.open_for_append(self.path) as file:
                file.write(json.dumps({"step": step, **scalars}) + "\n")
        except OSError as error:
            raise StorageError(
                f"could not save the metrics of step {step} to {self.path}: "
                f"{error.strerror or error}. Checkpoints already complete are kept."
            ) from error
        for name, value in scalars.items():
            self._tensorboard.add_scalar(name, value, step)

    def write_images(self, step: int, images: dict[str, np.ndarray]) -> None:
        """Each value (H, W, C) or (N, H, W, C), floats in [0, 1] or uint8."""
        if not self.enabled:
            return
        for name, image in images.items():
            image = np.asarray(image)
            if image.ndim == 3:
                self._tensorboard.add_image(name, image, step, dataformats="HWC")
            else:
                self._tensorboard.add_images(name, image, step, dataformats="NHWC")

    def flush(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.flush()

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()


def _drop_after(path: pathlib.Path, step: int, report=print) -> None:
    """Keeps the records of `path` up to `step`, rewritten atomically; a partial last line is
    cut and reported."""
    if not files.refuse_link(path).exists():
        return
    records, partial = _parse(path)
    if partial:
        report(f"{path}: cut its partial last line {partial[:60]!r} (an interrupted write).")
    kept = [record for record in records if record["step"] <= step]
    # A last record cut just before its newline still parses: rewritten, the next is not
    # appended to it.
    unterminated = not path.read_bytes().endswith(b"\n") and path.stat().st_size > 0
    if partial or unterminated or len(kept) < len(records):
        files.write_text(path, "".join(json.dumps(record) + "\n" for record in kept))


def _parse(path: pathlib.Path) -> tuple[list[dict], str]:
    """(the records of a metrics file, its partial last line or ''). A damaged line before
    the last raises DataError naming it."""
    lines = path.read_text(errors="replace").split("\n")
    last = max((n for n, line in enumerate(lines, start=1) if line.strip()), default=0)
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or "step" not in record:
                raise ValueError("not a record with a step")
        except ValueError as error:
            if number == last:  # a write cut short
                return records, line
            raise DataError(
                f"{path} line {number} is damaged ({error}); delete that line to go on."
            ) from None
        records.append(record)
    return records, ""


def read_metrics(workdir: str | pathlib.Path) -> list[dict]:
    """All complete records of a run's metrics.jsonl, in order."""
    path = pathlib.Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    return _parse(path)[0]
