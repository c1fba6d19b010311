"""Metrics to JSON lines (`metrics.jsonl`) and TensorBoard event files (`tensorboard/`).

Only process 0 writes. On resume, lines logged after the restored checkpoint's step (by the run
that was interrupted) are dropped, so the file reads as one uninterrupted run.
"""

import json
import pathlib

import jax
import numpy as np

from jaxconv.errors import StorageError

MAX_QUEUED_EVENTS = 100_000


class MetricWriter:
    def __init__(self, workdir: str | pathlib.Path, *, resume_step: int = 0):
        self.enabled = jax.process_index() == 0
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        self._tensorboard = None
        if not self.enabled:
            return
        _drop_after(self.path, resume_step)
        from tensorboardX import SummaryWriter

        # tensorboardX writes from a thread that dies on a full disk; with its default queue of
        # 10 events the run would then block forever on the 11th. This queue outlasts the run
        # until the next checkpoint save reports the disk.
        self._tensorboard = SummaryWriter(
            str(pathlib.Path(workdir) / "tensorboard"),
            purge_step=resume_step or None,
            max_queue=MAX_QUEUED_EVENTS,
        )

    def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        try:
            with self.path.open("a") as file:
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


def _drop_after(path: pathlib.Path, step: int) -> None:
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line)["step"] <= step
    ]
    path.write_text("".join(line + "\n" for line in kept))


def read_metrics(workdir: str | pathlib.Path) -> list[dict]:
    """All records of a run's metrics.jsonl, in order."""
    path = pathlib.Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
