"""Where pretrained variables come from: torchvision files or jaxconv runs."""

from jaxconv.transfer.merge import TransferError
from jaxconv.transfer.torchvision_weights import from_torchvision
from jaxconv.workdir import restore

SOURCE_KINDS = ("torchvision", "checkpoint")


def from_checkpoint(workdir, step: int | None = None, *, ema: bool = True) -> dict:
    """The variables of a jaxconv run's checkpoint (the newest unless `step` is given), or of a
    folder that `launch.py export` wrote (its evaluation variables, as exported).

    With `ema` and a run that kept an exponential moving average, the averaged parameters,
    which are the ones its evaluation reported.
    """
    return restore.read_variables(workdir, step, ema=ema)[0]


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
