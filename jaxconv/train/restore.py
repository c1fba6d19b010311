"""A finished run, rebuilt from its workdir: its config, model and trained variables.

For tools that use a trained model outside training (benchmark tables, reports, demos).
`export_run` keeps only what inference needs (the config and the evaluation variables, no
optimizer state) in a folder small enough to commit beside the code that uses it; `load_run`
reads such a folder as it reads a workdir.
"""

import json
import pathlib
import shutil

import flax.serialization
import jax
import ml_collections
import numpy as np

from jaxconv.configs import base
from jaxconv.train.checkpoint import read_state

EXPORTED_VARIABLES = "variables.msgpack"


def load_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
    """The resolved config a run saved as `config.json`, over the current defaults."""
    path = pathlib.Path(workdir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {workdir} a jaxconv run's workdir?")
    config = base.get_config()
    config.update_from_flattened_dict(_flatten(json.loads(path.read_text())))
    return config


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return flat


def load_run(workdir: str | pathlib.Path, num_outputs: int, step: int | None = None):
    """(config, model, variables) of the run in `workdir`; `num_outputs` sizes the model's
    output (classes, or image channels for denoising). Uses the averaged parameters when the
    run kept them, as its evaluation did."""
    from jaxconv.train.loop import build_model

    config = load_config(workdir)
    exported = pathlib.Path(workdir) / EXPORTED_VARIABLES
    if step is None and exported.exists():
        variables = read_exported(exported)
    else:
        variables = evaluation_variables(read_state(workdir, step))
    return config, build_model(config, num_outputs), variables


def evaluation_variables(state: dict) -> dict:
    """The variables a saved state evaluates with: averaged parameters where it kept them."""
    params = state["ema_params"] if state.get("ema_params") else state["params"]
    variables = {"params": params}
    if state.get("batch_stats"):
        variables["batch_stats"] = state["batch_stats"]
    return variables


def export_run(
    workdir: str | pathlib.Path,
    out: str | pathlib.Path,
    step: int | None = None,
    dtype=np.float16,
) -> pathlib.Path:
    """Writes the run's `config.json` and its evaluation variables (newest checkpoint, or
    `step`) to the folder `out`, floating-point values stored as `dtype` (float16 halves a
    float32 model; `load_run` gives them back as float32). Returns the variables' file."""
    workdir, out = pathlib.Path(workdir), pathlib.Path(out)
    load_config(workdir)  # a clear error if workdir is not a run
    variables = jax.tree.map(np.asarray, evaluation_variables(read_state(workdir, step)))
    stored = jax.tree.map(
        lambda x: x.astype(dtype) if np.issubdtype(x.dtype, np.floating) else x, variables
    )
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(workdir / "config.json", out / "config.json")
    path = out / EXPORTED_VARIABLES
    path.write_bytes(flax.serialization.msgpack_serialize(stored))
    return path


def read_exported(path: str | pathlib.Path) -> dict:
    """The variables `export_run` wrote, floating-point values as float32."""
    try:
        stored = flax.serialization.msgpack_restore(pathlib.Path(path).read_bytes())
    except Exception as error:  # msgpack raises several types for a damaged file
        raise ValueError(
            f"{path} is not an exported jaxconv model ({error}); export it again."
        ) from error
    return jax.tree.map(
        lambda x: x.astype(np.float32) if np.issubdtype(x.dtype, np.floating) else x, stored
    )
