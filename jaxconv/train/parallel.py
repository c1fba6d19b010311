"""Where the steps are compiled, and how batches and state are placed on devices.

`jit` mode: one `jax.jit` program over a `Mesh` whose `data` axis spans every device of every
process; the global batch is sharded along it and the state replicated. XLA inserts the
cross-device reductions, so batch-norm statistics and metric sums are over the global batch.
"""

import functools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), (DATA_AXIS,))


def check_batch_size(batch_size: int, mesh: Mesh, name: str = "batch_size") -> None:
    """Stops before compiling when the global batch does not split evenly over the devices."""
    if batch_size % mesh.size:
        lower = batch_size - batch_size % mesh.size
        raise ValueError(
            f"{name}={batch_size} does not divide across {mesh.size} devices; use a "
            f"multiple of {mesh.size} (e.g. --config.{name}="
            f"{lower or mesh.size})."
        )


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def put_batch(batch: dict, mesh: Mesh) -> dict:
    """Assembles each process's rows into one global array sharded along `data`."""
    sharding = batch_sharding(mesh)
    return {
        key: jax.make_array_from_process_local_data(sharding, value) for key, value in batch.items()
    }


def create_state(create_fn, mesh: Mesh):
    """Runs `create_fn()` so that its outputs are born replicated on every device."""
    return jax.jit(create_fn, out_shardings=replicated(mesh))()


def compile_train_step(step_fn, mesh: Mesh, **bound):
    """`step_fn(state, batch, **bound)` jitted once; the old state's buffers are donated."""
    return jax.jit(
        functools.partial(step_fn, **bound),
        in_shardings=(replicated(mesh), batch_sharding(mesh)),
        out_shardings=(replicated(mesh), replicated(mesh)),
        donate_argnums=0,
    )


def compile_eval_step(step_fn, mesh: Mesh, **bound):
    return jax.jit(
        functools.partial(step_fn, **bound),
        in_shardings=(replicated(mesh), batch_sharding(mesh)),
        out_shardings=replicated(mesh),
    )
