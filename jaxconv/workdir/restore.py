"""A run read back from disk: its config, its trained variables and its model.

The one reader of finished runs, for the report, transfer learning, export and benchmarks. A
path is either a training workdir (`config.json`, `checkpoints/<step>/`) or a folder that
`jaxconv.workdir.export` wrote (`config.json`, `model.json`, `variables.msgpack`: the
evaluation variables alone, small enough to commit beside the code that uses them); both read
the same way.
"""

import json
import pathlib
from typing import NamedTuple

import flax.serialization
import jax
import ml_collections
import numpy as np

from jaxconv.configs import base
from jaxconv.errors import ConfigError, DataError, MissingFileError, StorageError
from jaxconv.workdir.checkpoint import read_state

EXPORTED_VARIABLES = "variables.msgpack"
MODEL_CARD = "model.json"


class Run(NamedTuple):
    """A trained model: `model.apply(variables, images, train=False)` evaluates it."""

    config: ml_collections.ConfigDict
    model: object
    variables: dict
    step: int | None  # the checkpoint's step; None for an exported folder


def load_config(path: str | pathlib.Path) -> ml_collections.ConfigDict:
    """The resolved config a run saved as `config.json`, over the current defaults (a key
    added to jaxconv since keeps its default)."""
    file = pathlib.Path(path) / "config.json"
    if not file.exists():
        raise MissingFileError(f"{file} not found: is {path} a jaxconv run's workdir?")
    try:
        text = file.read_text()
    except OSError as error:
        raise StorageError(f"could not read {file} ({error.strerror or error}).") from error
    try:
        saved = json.loads(text)
        config = base.get_config()
        config.update_from_flattened_dict(_flatten(saved))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ConfigError(
            f"{file} cannot be read as a jaxconv config ({error}); restore it from the run's "
            "launch command, or train into a new --workdir."
        ) from None
    return config


def _flatten(tree: dict, prefix: str = "") -> dict:
    """Dotted keys, JSON lists as the tuples the config declares."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = _tuples(value)
    return flat


def _tuples(value):
    return tuple(_tuples(item) for item in value) if isinstance(value, list) else value


def is_export(path: str | pathlib.Path) -> bool:
    return (pathlib.Path(path) / EXPORTED_VARIABLES).exists()


def read_variables(
    path: str | pathlib.Path, step: int | None = None, *, ema: bool = True
) -> tuple[dict, int | None]:
    """(variables, step) of the run at `path`: an exported folder's variables, or those of its
    newest checkpoint (or of `step`). With `ema`, the averaged parameters where the run kept
    them, which are the ones its evaluation reported."""
    if step is None and is_export(path):
        return read_exported(pathlib.Path(path) / EXPORTED_VARIABLES), None
    state = read_state(path, step)
    return evaluation_variables(state, ema=ema), int(state["step"])


def evaluation_variables(state: dict, *, ema: bool = True) -> dict:
    """The variables a saved state evaluates with: averaged parameters where it kept them."""
    params = state["ema_params"] if ema and state.get("ema_params") else state["params"]
    variables = {"params": params}
    if state.get("batch_stats"):
        variables["batch_stats"] = state["batch_stats"]
    return variables


def load_run(
    path: str | pathlib.Path, num_outputs: int | None = None, step: int | None = None
) -> Run:
    """The run at `path` with its model rebuilt as training built it. `num_outputs` sizes the
    model's output (classes, or image channels for denoising); by default the model card says
    (`model_card`)."""
    from jaxconv.models.from_config import build_model

    config = load_config(path)
    if num_outputs is None:
        num_outputs = model_card(path)["num_outputs"]
    variables, step = read_variables(path, step)
    return Run(config, build_model(config, num_outputs), variables, step)


def model_card(path: str | pathlib.Path) -> dict:
    """What using the run's model needs besides its variables: the task, the input shape
    (H, W, C) it was trained on, its number of outputs, the class names and the input's
    normalisation. An export holds it as `model.json`; for a workdir it comes from the
    dataset's metadata."""
    card_file = pathlib.Path(path) / MODEL_CARD
    if card_file.exists():
        try:
            return json.loads(card_file.read_text())
        except ValueError as error:
            raise DataError(f"{card_file} is damaged ({error}); export the run again.") from None
    from jaxconv import data, tasks

    config = load_config(path)
    source = data.get_source(
        config.data.name, config.data.eval_split, config.data.data_dir, config.data
    )
    num_classes = source.num_classes or 0  # None: a denoising set has no classes
    return {
        "task": config.task,
        "image_shape": list(source.image_shape),
        "num_outputs": tasks.get(config.task, config).output_size(source),
        "class_names": [str(name) for name in getattr(source, "class_names", ()) or ()]
        or [str(k) for k in range(num_classes)],
        "mean": config.data.mean,
        "std": config.data.std,
        "predicts_noise": bool(config.denoising.predicts_noise),
    }


def read_exported(path: str | pathlib.Path) -> dict:
    """The variables `export_run` wrote, floating-point values as float32."""
    try:
        stored = flax.serialization.msgpack_restore(pathlib.Path(path).read_bytes())
    except Exception as error:  # msgpack raises several types for a damaged file
        raise DataError(
            f"{path} is not an exported jaxconv model ({error}); export it again."
        ) from None
    return jax.tree.map(
        lambda x: x.astype(np.float32) if np.issubdtype(x.dtype, np.floating) else x, stored
    )
