"""A finished run, rebuilt from its workdir: its config, model and trained variables.

For tools that use a trained model outside training (benchmark tables, reports, demos).
"""

import json
import pathlib

import ml_collections

from jaxconv.configs import base
from jaxconv.train.checkpoint import read_state


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
    state = read_state(workdir, step)
    params = state["ema_params"] if state.get("ema_params") else state["params"]
    variables = {"params": params}
    if state.get("batch_stats"):
        variables["batch_stats"] = state["batch_stats"]
    return config, build_model(config, num_outputs), variables
