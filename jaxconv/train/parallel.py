"""Where the steps are compiled, and how batches and state are placed on devices.

Two strategies, one interface, chosen by `config.parallel.mode`:

- `jit` (default): one `jax.jit` program over a `Mesh` whose `data` axis spans every device of
  every process. The global batch is sharded along it and the state replicated (or, with
  `shard_params`, each parameter split along its largest divisible axis, FSDP-style). XLA
  inserts the cross-device reductions, so batch-norm statistics and metric sums are over the
  global batch.
- `pmap`: the classic `jax.pmap` over this process's devices, with the state replicated along
  a leading device axis and gradients, metrics and batch-norm statistics reduced with
  `lax.pmean`/`psum` over the `devices` axis inside the step.

Both take the same numpy batch (this process's rows) and give the same results up to float
rounding. Checkpoints always hold the plain (unreplicated) state, so a run can move between
strategies and device counts.
"""

import functools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxconv.errors import ConfigError

DATA_AXIS = "data"
PMAP_AXIS = "devices"
MODES = ("jit", "pmap")


def make_mesh(devices=None) -> Mesh:
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), (DATA_AXIS,))


def check_batch_size(batch_size: int, device_count: int, name: str = "batch_size") -> None:
    """Stops before compiling when the global batch does not split evenly over the devices."""
    if batch_size % device_count:
        lower = batch_size - batch_size % device_count
        raise ConfigError(
            f"{name}={batch_size} does not divide across {device_count} devices; "
            f"use a multiple of {device_count} (e.g. --config.{name}="
            f"{lower or device_count})."
        )


def run_once(fn, **jit_options):
    """`jax.jit(fn, **jit_options)()`, compiled for a program that runs once.

    On CPU it compiles with LLVM's optimisations at level 1: at the default level the random
    initialisers of a model's parameters take far longer to compile than to run, and level 1
    gives the same values bit for bit. Not level 0, which jaxlib 0.10.2 miscompiles (a LeNet-5
    gradient comes out wrong there; see tests/conftest.py).
    """
    lowered = jax.jit(fn, **jit_options).lower()
    options = {"xla_backend_optimization_level": 1} if jax.default_backend() == "cpu" else {}
    return lowered.compile(compiler_options=options)()


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def fsdp_sharding(mesh: Mesh, shape: tuple[int, ...], min_size: int = 2**16) -> NamedSharding:
    """Splits an array along its largest axis that the device count divides; arrays under
    `min_size` elements, where splitting saves little, and indivisible ones stay replicated."""
    if int(np.prod(shape, dtype=np.int64)) < min_size:
        return replicated(mesh)
    for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
        if shape[axis] % mesh.size == 0:
            spec = [None] * len(shape)
            spec[axis] = DATA_AXIS
            return NamedSharding(mesh, PartitionSpec(*spec))
    return replicated(mesh)


class JitStrategy:
    """`jax.jit` over a mesh of all devices; see the module docstring."""

    def __init__(self, shard_params: bool = False, devices=None, min_shard_size: int = 2**16):
        self.mesh = make_mesh(devices)
        self.shard_params, self.min_shard_size = shard_params, min_shard_size
        self.device_count = self.mesh.size
        self._state_sharding = replicated(self.mesh)
        # One program over the global batch: batch-norm statistics are global already.
        self.batch_norm_axis = None

    def create_state(self, create_fn):
        """Runs `create_fn()` so that the state is born on the devices with its sharding."""
        if self.shard_params:
            shapes = jax.eval_shape(create_fn)
            self._state_sharding = jax.tree.map(
                lambda s: fsdp_sharding(self.mesh, s.shape, self.min_shard_size), shapes
            )
        return run_once(create_fn, out_shardings=self._state_sharding)

    def put_batch(self, batch: dict) -> dict:
        """Assembles each process's rows into one global array sharded along `data`."""
        sharding = batch_sharding(self.mesh)
        return {
            key: jax.make_array_from_process_local_data(sharding, value)
            for key, value in batch.items()
        }

    def compile_train_step(self, step_fn, **bound):
        """`step_fn(state, batch, **bound)` jitted once; the old state's buffers are donated."""
        return jax.jit(
            functools.partial(step_fn, **bound),
            in_shardings=(self._state_sharding, batch_sharding(self.mesh)),
            out_shardings=(self._state_sharding, replicated(self.mesh)),
            donate_argnums=0,
        )

    def compile_eval_step(self, step_fn, **bound):
        return jax.jit(
            functools.partial(step_fn, **bound),
            in_shardings=(self._state_sharding, batch_sharding(self.mesh)),
            out_shardings=replicated(self.mesh),
        )

    def to_saved(self, state):
        return state

    def from_saved(self, state):
        # Placed exactly as the step's outputs are: a leaf with any other placement (a restored
        # or pretrained array on one device) would make the first step compile a second time.
        return jax.device_put(state, self._state_sharding)


class PmapStrategy:
    """`jax.pmap` over this process's devices; see the module docstring.

    With `sync_batch_norm`, batch norm normalises with the statistics of the global batch
    (Flax's BatchNorm `axis_name`), exactly what `jit` does; without it, each device uses its
    own rows' statistics, and the running averages are averaged after each step.
    """

    def __init__(self, sync_batch_norm: bool = True, devices=None):
        self.devices = list(devices) if devices is not None else jax.local_devices()
        self.device_count = len(self.devices) * jax.process_count()
        # The axis the model's batch norm averages its statistics over (its batch_norm_axis).
        self.batch_norm_axis = PMAP_AXIS if sync_batch_norm else None

    def _replicate(self, tree):
        """One copy of `tree` per local device, stacked along a leading device axis."""
        count = len(self.devices)
        sharding = NamedSharding(
            Mesh(np.asarray(self.devices), (PMAP_AXIS,)), PartitionSpec(PMAP_AXIS)
        )
        return jax.tree.map(
            lambda x: jax.device_put(
                np.broadcast_to(np.asarray(x), (count, *np.shape(x))), sharding
            ),
            tree,
        )

    def create_state(self, create_fn):
        return self._replicate(run_once(create_fn))

    def put_batch(self, batch: dict) -> dict:
        """Splits this process's rows into one slice per local device."""
        count = len(self.devices)
        return jax.tree.map(lambda x: x.reshape(count, x.shape[0] // count, *x.shape[1:]), batch)

    def _pmap(self, step_fn, donate: bool, **bound):
        compiled = jax.pmap(
            functools.partial(step_fn, axis_name=PMAP_AXIS, **bound),
            axis_name=PMAP_AXIS,
            devices=self.devices,
            donate_argnums=(0,) if donate else (),
        )
        return compiled

    def compile_train_step(self, step_fn, **bound):
        compiled = self._pmap(step_fn, donate=True, **bound)

        def train_step(state, batch):
            state, metrics = compiled(state, batch)
            return state, jax.tree.map(lambda x: x[0], metrics)  # identical on every device

        return train_step

    def compile_eval_step(self, step_fn, **bound):
        compiled = self._pmap(step_fn, donate=False, **bound)
        return lambda state, batch: jax.tree.map(lambda x: x[0], compiled(state, batch))

    def to_saved(self, state):
        """The state of the first device: the replicas are equal."""
        return jax.tree.map(lambda x: x[0], state)

    def from_saved(self, state):
        return self._replicate(state)


def trial_steps(strategy, step_fn, state, batch, model_with_plans, **bound):
    """For the network-level check of `planning.plan`: a function of plans returning a
    function of no arguments that runs one step of `step_fn(state, batch, **bound)` with
    `model=model_with_plans(plans)` (the model computing its convolutions with those plans),
    compiled as `strategy` compiles the run's step. The steps share a copy of `state` made
    through the host (new buffers, the same placement: each step donates the state it is
    given), and `batch()`, this process's rows, is read and placed at the first step built."""
    trial = {}

    def build(plans):
        step = strategy.compile_train_step(step_fn, model=model_with_plans(plans), **bound)
        if not trial:
            saved = jax.tree.map(np.asarray, strategy.to_saved(state))
            trial["state"] = strategy.from_saved(saved)
            trial["batch"] = strategy.put_batch(batch())

        def run():
            trial["state"], metrics = step(trial["state"], trial["batch"])
            return metrics

        return run

    return build


def make_strategy(config):
    """The strategy `config.parallel` asks for."""
    mode = config.parallel.mode
    if mode == "jit":
        if not config.parallel.sync_batch_norm:
            # One jitted program over a global batch has one set of batch statistics.
            raise ConfigError(
                "parallel.sync_batch_norm=False (per-device batch statistics) needs "
                "parallel.mode='pmap'; with 'jit' they are always the global batch's."
            )
        return JitStrategy(shard_params=config.parallel.shard_params)
    if mode == "pmap":
        return PmapStrategy(sync_batch_norm=config.parallel.sync_batch_norm)
    raise ConfigError(f"unknown parallel.mode '{mode}'; use one of {', '.join(MODES)}.")


def initialize_distributed(config) -> str | None:
    """Starts JAX's distributed runtime for a multi-host run; returns what it did.

    The coordinator address, process count and process id come from `config.parallel` or else
    from the environment variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
    JAX_PROCESS_ID. With none of them set this is a single-process run and nothing happens.
    Must run before JAX's backend starts. On CPU, cross-process collectives use gloo.
    """
    import os

    options = config.parallel
    address = options.coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
    count = options.num_processes or int(os.environ.get("JAX_NUM_PROCESSES", "0"))
    index = (
        options.process_id
        if options.process_id >= 0
        else int(os.environ.get("JAX_PROCESS_ID", "-1"))
    )
    if not address and count <= 1:
        return None
    if not address or count < 1 or not 0 <= index < count:
        raise ConfigError(
            f"a multi-host run needs a coordinator address, a process count and a "
            f"process id in [0, count); got address '{address}', count {count}, id "
            f"{index}. Set --config.parallel.coordinator_address=HOST:PORT "
            "--config.parallel.num_processes=N --config.parallel.process_id=I."
        )
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=address, num_processes=count, process_id=index)
    return f"process {index} of {count}, coordinator {address}"
