"""Training: the state, the pure steps, their compilation over devices (jit or pmap), the
optimizer, TensorBoard previews and the loop. A run's files are jaxconv.workdir's."""

from jaxconv.train.loop import run

__all__ = ["run"]
