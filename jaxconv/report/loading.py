"""What the report reads of a run: its files (config, metrics, summary) and its trained model.

A run is a training workdir or a folder that `launch.py export` wrote. The model is rebuilt by
`jaxconv.workdir.restore` as training built it, with the newest checkpoint's (or the
exported) variables, and runs on the evaluation split in fixed-size batches compiled once.
"""

import dataclasses
import functools
import json
import pathlib

import ml_collections
import numpy as np

from jaxconv.errors import DataError, MissingFileError
from jaxconv.workdir import restore
from jaxconv.workdir.writers import read_metrics


@dataclasses.dataclass
class RunFiles:
    """What a workdir holds besides checkpoints; `config` is None when there is no
    config.json (runs from before it was written)."""

    workdir: pathlib.Path
    config: ml_collections.ConfigDict | None
    config_json: dict
    records: list[dict]
    summary: dict

    @property
    def name(self) -> str:
        return self.workdir.resolve().name


def read_json(path: pathlib.Path) -> dict:
    """A run's JSON file ({} when it is missing); a damaged one raises DataError naming it."""
    if not path.exists():
        return {}
    try:
        value = json.loads(path.read_text())
    except ValueError as error:
        raise DataError(
            f"{path} is damaged ({error}); restore it, or delete it to go on without it."
        ) from None
    if not isinstance(value, dict):
        raise DataError(f"{path} holds {type(value).__name__}, not a JSON object; restore it.")
    return value


def read_run(workdir: str | pathlib.Path) -> RunFiles:
    workdir = pathlib.Path(workdir)
    if not workdir.is_dir():
        raise MissingFileError(f"workdir {workdir} does not exist; pass a run's --workdir.")
    saved = read_json(workdir / "config.json")
    config = restore.load_config(workdir) if saved else None
    return RunFiles(
        workdir, config, saved, read_metrics(workdir), read_json(workdir / "summary.json")
    )


@dataclasses.dataclass
class Restored:
    """A run's model with its saved variables, and the evaluation split it is judged on."""

    config: ml_collections.ConfigDict
    model: object
    variables: dict
    source: object
    step: int | None  # None for an exported model

    @property
    def trained(self) -> str:
        """When its variables were saved, for captions: 'after step 4' or 'as exported'."""
        return "as exported" if self.step is None else f"after step {self.step}"

    @functools.cached_property
    def apply(self):
        import jax

        return jax.jit(functools.partial(self.model.apply, train=False))

    def examples(self, indices) -> dict:
        """The examples at `indices` as stored: uint8 (or 0-255 float) images, labels, ..."""
        from jaxconv.data import pipeline

        return pipeline.read(self.source, np.asarray(indices, np.int64))

    def batch(self, indices) -> dict:
        """The examples at `indices`, normalised as in training: the model's input."""
        from jaxconv.data import pipeline

        return pipeline.normalise_images(
            self.examples(indices), self.config.data.mean, self.config.data.std
        )

    def predict(self, indices, batch_size: int = 0) -> tuple[dict, np.ndarray]:
        """The normalised batch of `indices` and the model's outputs on it (float32).

        With `batch_size`, the batch is padded to it (and the padding dropped again), so
        batches of every length share one compiled model.
        """
        import jax

        indices = np.asarray(indices, np.int64)
        count = len(indices)
        batch = self.batch(
            np.concatenate([indices, np.zeros(max(batch_size - count, 0), np.int64)])
        )
        outputs = np.asarray(jax.device_get(self.apply(self.variables, batch["image"])))
        batch = {key: value[:count] for key, value in batch.items()}
        return batch, outputs[:count].astype(np.float32)

    def batches(self, count: int, batch_size: int = 100):
        """Yields (batch, outputs) over the first `count` evaluation examples, in order."""
        count = min(count, len(self.source))
        batch_size = min(batch_size, count)
        for start in range(0, count, batch_size):
            yield self.predict(np.arange(start, min(start + batch_size, count)), batch_size)


def restore_model(files: RunFiles) -> Restored:
    """The run's model, trained variables and evaluation source; MissingFileError when a
    workdir has no checkpoint yet."""
    from jaxconv import data, tasks

    config = files.config
    source = data.get_source(
        config.data.name, config.data.eval_split, config.data.data_dir, config.data
    )
    num_outputs = tasks.get(config.task, config).output_size(source)
    run = restore.load_run(files.workdir, num_outputs)
    return Restored(config, run.model, run.variables, source, run.step)
