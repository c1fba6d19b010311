"""Training: state, steps, device placement, checkpoints, metric writers and the loop."""

from jaxconv.train.loop import run

__all__ = ["run"]
