"""Where pretrained variables come from: torchvision files or jaxconv checkpoints."""

import pathlib

from jaxconv.train import checkpoint
from jaxconv.transfer.merge import TransferError
from jaxconv.transfer.torchvision_weights import from_torchvision

SOURCE_KINDS = ("torchvision", "checkpoint")


def from_checkpoint(workdir, step: int | None = None, *, ema: bool = True) -> dict:
    """The variables of a jaxconv run's checkpoint (the newest unless `step` is given), or of a
    folder that `launch.py export` wrote (its evaluation variables, as exported).

    With `ema` and a run that kept an exponential moving average, the averaged parameters,
    which are the ones its evaluation reported.
    """
    # Imported here: jaxconv.train.restore reads configs, whose defaults come from this package.
    from jaxconv.train import restore

    exported = pathlib.Path(workdir) / restore.EXPORTED_VARIABLES
    if step is None and exported.exists():
        return restore.read_exported(exported)
    state = checkpoint.read_state(workdir, step)
    params = state["ema_params"] if ema and state.get("ema_params") else state["params"]
    variables = {"params": params}
    if state.get("batch_stats"):
        variables["batch_stats"] = state["batch_stats"]
    return variables


def load(source: str, model_name: str) -> dict:
    """Variables from a config's `transfer.source`: 'torchvision:<file>' (weights for
    `model_name`) or 'checkpoint:<workdir>' (its newest checkpoint, or an exported folder)."""
    kind, separator, location = source.partition(":")
    if not separator or kind not in SOURCE_KINDS or not location:
        raise TransferError(
            f"transfer.source {source!r} is not one of 'torchvision:<file .pth or "
            ".safetensors>' or 'checkpoint:<workdir>'"
        )
    if kind == "torchvision":
        return from_torchvision(model_name, location)
    return from_checkpoint(location)
