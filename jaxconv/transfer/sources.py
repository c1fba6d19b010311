"""Where pretrained variables come from: torchvision files or jaxconv checkpoints."""

from jaxconv.train import checkpoint
from jaxconv.transfer.merge import TransferError
from jaxconv.transfer.torchvision_weights import from_torchvision

SOURCE_KINDS = ("torchvision", "checkpoint")


def from_checkpoint(workdir, step: int | None = None, *, ema: bool = True) -> dict:
    """The variables of a jaxconv run's checkpoint (the newest unless `step` is given).

    With `ema` and a run that kept an exponential moving average, the averaged parameters,
    which are the ones its evaluation reported.
    """
    state = checkpoint.read_state(workdir, step)
    params = state["ema_params"] if ema and state.get("ema_params") else state["params"]
    variables = {"params": params}
    if state.get("batch_stats"):
        variables["batch_stats"] = state["batch_stats"]
    return variables


def load(source: str, model_name: str) -> dict:
    """Variables from a config's `transfer.source`: 'torchvision:<file>' (weights for
    `model_name`) or 'checkpoint:<workdir>' (its newest checkpoint)."""
    kind, separator, location = source.partition(":")
    if not separator or kind not in SOURCE_KINDS or not location:
        raise TransferError(
            f"transfer.source {source!r} is not one of 'torchvision:<file .pth or "
            ".safetensors>' or 'checkpoint:<workdir>'"
        )
    if kind == "torchvision":
        return from_torchvision(model_name, location)
    return from_checkpoint(location)
