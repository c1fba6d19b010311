"""Orbax checkpoints of the training state and the data iterator, saved together.

One checkpoint is `checkpoints/<step>/` with two items: `state` (params, batch statistics,
optimizer state, step, RNG key) and `data` (the grain iterator's position). Restoring both
makes a resumed run see exactly the batches an uninterrupted run would have seen.
"""

import pathlib

import grain
import jax
import orbax.checkpoint as ocp

from jaxconv.train.state import TrainState

_STATE_FIELDS = ("step", "params", "batch_stats", "opt_state", "rng")


def _saveable(state: TrainState) -> dict:
    return {field: getattr(state, field) for field in _STATE_FIELDS}


class Checkpointer:
    """Periodic, asynchronous saves under `workdir/checkpoints`, keeping the newest `keep`."""

    def __init__(self, workdir: str | pathlib.Path, *, keep: int = 3):
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=True
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, state: TrainState, data_iterator: grain.DatasetIterator) -> None:
        step = int(jax.device_get(state.step))
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(_saveable(state)),
            data=grain.checkpoint.CheckpointSave(data_iterator),
        )
        self.manager.save(step, args=args, force=True)

    def restore_latest(
        self, state: TrainState, data_iterator: grain.DatasetIterator
    ) -> TrainState | None:
        """The newest checkpoint restored into `state`'s structure and shardings (and the
        iterator moved to its position), or None when there is none."""
        step = self.manager.latest_step()
        if step is None:
            return None
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _saveable(state))
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract),
                data=grain.checkpoint.CheckpointRestore(data_iterator),
            ),
        )
        return state.replace(**restored.state)

    def wait(self) -> None:
        """Blocks until every asynchronous save has been written."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()
