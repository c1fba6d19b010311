"""Orbax checkpoints of the training state and the data iterator, saved together.

One checkpoint is `checkpoints/<step>/` with three items: `state` (params, batch statistics,
optimizer state, step, RNG key), `data` (the grain iterator's position) and `checksums` (a
SHA-256 of every array of `state`, by name). Restoring the first two makes a resumed run see
exactly the batches an uninterrupted run would have seen; the third verifies what was read.

What keeps work safe:
- Saves are asynchronous and atomic: orbax writes into a temporary folder and renames it only
  when every file is complete, so a run killed mid-save leaves no half checkpoint behind (the
  temporary folder is removed at the next start). Old checkpoints are deleted only after a new
  one is complete.
- The newest `keep` checkpoints are kept, and the best by `best_metric` too.
- A checkpoint that cannot be read (a truncated or missing file), or whose arrays do not
  match their checksums (bytes changed on disk), is reported with the array named, moved
  aside to `checkpoints/unreadable_<step>/` (kept for inspection, never deleted) and the
  previous one is restored instead. When no checkpoint fits the run (its config changed),
  nothing is moved and the run stops with a message.
- `WorkdirLock` stops a second run from writing into a workdir that a live run holds.
"""

import fcntl
import hashlib
import json
import os
import pathlib
import shutil
import time

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from orbax.checkpoint import checkpoint_managers

from jaxconv.errors import CheckpointError, MissingFileError, WorkdirError
from jaxconv.workdir import files

# Saves that fail one after another before the run stops: a deleted folder costs one, a full
# disk every one.
MAX_FAILURES_IN_A_ROW = 3
# The wait before saving again after the first failure in a row, doubled after each further
# one: a large folder's deletion, still under way, fails the saves made meanwhile.
RETRY_SECONDS = 1.0
_STATE_FIELDS = ("step", "params", "batch_stats", "opt_state", "rng", "ema_params")


class WorkdirInUseError(WorkdirError):
    """Another live run holds the workdir."""


def _saveable(state) -> dict:
    return {field: getattr(state, field) for field in _STATE_FIELDS}


class CorruptCheckpointError(CheckpointError):
    """A checkpoint whose arrays, as read, do not match the checksums saved with them."""


def checksums(tree) -> dict[str, dict | None]:
    """{'params/conv1/conv/kernel': {'dtype', 'shape', 'sha256' of its bytes}, ...} for every
    array of `tree`. An array this process holds only part of (sharded across hosts) gets
    None: it is not checked."""
    sums = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = "/".join(_key_name(key) for key in path)
        value = _host_value(leaf)
        if value is None:
            sums[name] = None
            continue
        digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        sums[name] = {"dtype": value.dtype.name, "shape": list(value.shape), "sha256": digest}
    return sums


def _key_name(key) -> str:
    for attribute in ("key", "name", "idx"):
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def _host_value(leaf) -> np.ndarray | None:
    if isinstance(leaf, jax.Array):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        if not leaf.is_fully_addressable:
            if not leaf.is_fully_replicated:
                return None
            leaf = leaf.addressable_data(0)
    return np.asarray(jax.device_get(leaf))


def verify(step: int, restored, saved_sums: dict) -> None:
    """Checks `restored` against the checksums saved with checkpoint `step`. An array whose
    bytes differ raises CorruptCheckpointError naming it; one read back with another dtype or
    shape (restored into another model or precision) raises CheckpointError: the checkpoint
    does not fit, which is no corruption. Arrays saved without a checksum are not checked."""
    found = checksums(restored)
    unfit, corrupt = [], []
    for name, saved in saved_sums.items():
        now = found.get(name)
        if saved is None or (name in found and now is None):
            continue
        if now is None or (now["dtype"], now["shape"]) != (saved["dtype"], saved["shape"]):
            unfit.append(f"{name} ({saved['dtype']} {tuple(saved['shape'])} on disk)")
        elif now["sha256"] != saved["sha256"]:
            corrupt.append(name)
    if corrupt:
        shown = ", ".join(corrupt[:8]) + (
            f" and {len(corrupt) - 8} more" if len(corrupt) > 8 else ""
        )
        raise CorruptCheckpointError(f"checkpoint {step} does not match its checksums: {shown}")
    if unfit:
        raise CheckpointError(
            f"checkpoint {step} holds arrays of other dtypes or shapes: {', '.join(unfit[:8])}"
        )


def _preservation(keep: int, best_metric: str | None, best_mode: str):
    policies = [checkpoint_managers.LatestN(n=keep)]
    if best_metric:
        policies.append(
            checkpoint_managers.BestN(
                get_metric_fn=lambda metrics: metrics[best_metric],
                reverse=best_mode == "min",
                n=1,
                keep_checkpoints_without_metrics=False,
            )
        )
    return checkpoint_managers.AnyPreservationPolicy(policies)


class Checkpointer:
    """Saves and restores a run's checkpoints under `workdir/checkpoints`."""

    def __init__(
        self,
        workdir: str | pathlib.Path,
        *,
        keep: int = 3,
        best_metric: str | None = None,
        best_mode: str = "max",
        report=print,
    ):
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
        self.best_metric, self.report = best_metric, report
        self._failures_in_a_row = 0
        self._options = ocp.CheckpointManagerOptions(
            create=True,
            enable_async_checkpointing=True,
            # Each save's folders are made before save() returns, so a failure to make them (the
            # checkpoint folder deleted meanwhile) is raised there and handled below. Made in
            # the background, such a failure sent no signal, and the save's other items waited
            # out orbax's 300 s coordination timeout for it.
            async_options=ocp.AsyncOptions(create_directories_asynchronously=False),
            cleanup_tmp_directories=True,
            preservation_policy=_preservation(keep, best_metric, best_mode),
        )
        self.manager = self._open()

    def _open(self) -> ocp.CheckpointManager:
        try:
            manager = ocp.CheckpointManager(self.directory, options=self._options)
        except PermissionError as error:
            raise CheckpointError(
                f"cannot write checkpoints in {self.directory} ({error.strerror or error}); fix "
                "its permissions or choose another --workdir."
            ) from error
        # The manager removes unfinished saves' temporary folders in a thread of its own, which
        # only its first save waits for and closing it does not: a manager closed before it
        # saved (reopened at once) left that thread to remove the next manager's save while it
        # was written. orbax has no public call that waits for it.
        getattr(manager, "_maybe_await_cleanup_tmp_directory", lambda: None)()
        return manager

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(
        self,
        state,
        data_iterator: grain.DatasetIterator,
        metrics: dict[str, float] | None = None,
    ) -> None:
        """Starts an asynchronous save of `state` at its step.

        Raises CheckpointError once saves have failed MAX_FAILURES_IN_A_ROW times in a row (a
        full disk, a folder made read-only); the checkpoints already complete stay as they were.
        """
        step = int(jax.device_get(state.step))
        self._recover_from_failed_save(step)
        saveable = _saveable(state)
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(saveable),
            data=grain.checkpoint.CheckpointSave(data_iterator),
            checksums=ocp.args.JsonSave(checksums(saveable)),
        )
        if self.best_metric and (not metrics or self.best_metric not in metrics):
            metrics = None  # only checkpoints with an evaluation compete for "best"
        while True:
            try:
                self.manager.save(step, args=args, metrics=metrics, force=True)
                return
            except Exception as error:  # noqa: BLE001 - every failure gets the same handling
                self._failed(step, error)

    def finish(
        self,
        state,
        data_iterator: grain.DatasetIterator,
        metrics: dict[str, float] | None = None,
    ) -> None:
        """Waits for the saves in flight, the last of them `state`'s; when that one did not land
        (its folder removed while it was written, say), saves `state` again, still in memory,
        and waits for it. Raises CheckpointError as `save` and `wait` do."""
        step = int(jax.device_get(state.step))
        again = self._recover_from_failed_save(step) or step not in self.manager.all_steps()
        if jax.process_count() > 1:  # a save is collective: every process saves again, or none
            again = bool(multihost_utils.process_allgather(np.asarray(again)).any())
        if again:
            self.save(state, data_iterator, metrics)
        self.wait()

    def _recover_from_failed_save(self, step: int) -> bool:
        """Checks how the previous asynchronous save ended (usually long ago: waiting is what
        surfaces its error, if any); whether it failed."""
        try:
            self.manager.wait_until_finished()
            self.manager.check_for_errors()
            if self.directory.exists():
                self._failures_in_a_row = 0
                return False
            error = FileNotFoundError(f"{self.directory} was removed")
        except Exception as caught:  # noqa: BLE001
            error = caught
        self._failed(step, error)
        return True

    def _failed(self, step: int, error: Exception) -> None:
        """A failed save (its folder deleted under it, say) is reported and, after a wait
        (RETRY_SECONDS, doubling), the manager reopened to try again; MAX_FAILURES_IN_A_ROW of
        them (a full disk) stop the run."""
        self._failures_in_a_row += 1
        if self._failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
            raise CheckpointError(
                f"could not save the checkpoint of step {step} in "
                f"{self.directory}: {_first_line(error)}. Checkpoints "
                "already complete are kept."
            ) from error
        self.report(f"A checkpoint save failed ({_first_line(error)}); saving step {step} afresh.")
        time.sleep(RETRY_SECONDS * 2 ** (self._failures_in_a_row - 1))
        self._reopen()

    def _reopen(self) -> None:
        """Starts afresh on a checkpoint folder that was removed while the run went on; the
        saves that were writing into it are abandoned (their folder is gone)."""
        try:
            self.manager.close()
        except Exception:  # noqa: BLE001, S110 - those saves failed with their folder
            pass
        for attempt in range(MAX_FAILURES_IN_A_ROW):
            try:
                self.manager = self._open()
                return
            except OSError as error:  # a deletion still under way: a step vanished mid-read
                if attempt == MAX_FAILURES_IN_A_ROW - 1:
                    raise CheckpointError(
                        f"could not reopen {self.directory}: {_first_line(error)}. "
                        "Checkpoints already complete are kept."
                    ) from error
                time.sleep(0.5)

    def restore_latest(self, state, data_iterator: grain.DatasetIterator, report=print):
        """The newest readable, verified checkpoint restored into `state`'s structure and
        shardings (and the iterator moved to its position), or None when there is none.

        The shardings come from `state`, so a run saved on 8 devices restores onto 1. The
        checkpoints newer than the one restored could not be read, or failed their checksums:
        they are moved aside. When none can be read and none is corrupt, nothing is moved:
        that is a run whose structure changed (model, optimizer, EMA, process count), not one
        whose every file broke, and it stops with CheckpointError so the user decides.
        """
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _saveable(state))
        failures = []
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                restored = self._restore_verified(step, abstract, data_iterator)
            except Exception as error:  # noqa: BLE001 - judged once every step was tried
                failures.append((step, error))
                continue
            for failed, error in failures:
                moved = self._set_aside(failed)
                report(
                    f"Checkpoint at step {failed} is unreadable ({type(error).__name__}: "
                    f"{_first_line(error)}); moved it to {moved} and restored step {step}."
                )
            return state.replace(**restored)
        corrupt = [(step, e) for step, e in failures if isinstance(e, CorruptCheckpointError)]
        if corrupt and len(corrupt) == len(failures):
            moved = [str(self._set_aside(step)) for step, _ in corrupt]
            raise CheckpointError(
                f"every checkpoint in {self.directory} fails its checksums "
                f"({_first_line(corrupt[0][1])}); moved them to {', '.join(moved)}. Run again "
                "to train from the start."
            )
        if failures:
            steps = ", ".join(str(step) for step, _ in failures)
            step, error = failures[0]
            raise CheckpointError(
                f"no checkpoint in {self.directory} (steps {steps}) fits this run: step {step} "
                f"gives {type(error).__name__}: {_first_line(error)}. If the config or the "
                "process count changed since they were written, start with a new --workdir "
                "(or restore the old settings); nothing was moved or deleted."
            )
        return None

    def _restore_verified(self, step: int, abstract, data_iterator) -> dict:
        """The state of checkpoint `step` (the iterator moved to its position), checked
        against its checksums where it has them."""
        items = dict(
            state=ocp.args.StandardRestore(abstract),
            data=grain.checkpoint.CheckpointRestore(data_iterator),
        )
        verified = (self.directory / str(step) / "checksums").exists()
        if verified:
            items["checksums"] = ocp.args.JsonRestore()
        restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        if verified:
            verify(step, restored.state, restored.checksums)
        return restored.state

    def _set_aside(self, step: int) -> pathlib.Path:
        """Moves checkpoint `step` to `unreadable_<step>` (process 0 moves it, every process
        waits for that: the folder is shared)."""
        _barrier(f"set aside {step}")
        source = self.directory / str(step)
        target = self.directory / f"unreadable_{step}"
        suffix = 1
        while target.exists():
            target = self.directory / f"unreadable_{step}.{suffix}"
            suffix += 1
        if jax.process_index() == 0:
            shutil.move(source, target)
        _barrier(f"set aside {step}, moved")
        self.manager.reload()
        return target

    def wait(self) -> None:
        """Blocks until every asynchronous save has been written; raises CheckpointError if
        one failed."""
        try:
            self.manager.wait_until_finished()
            self.manager.check_for_errors()
        except Exception as error:  # noqa: BLE001
            raise CheckpointError(
                f"a checkpoint save in {self.directory} failed: {error}. "
                "Checkpoints already complete are kept."
            ) from error

    def close(self) -> None:
        """Closes the manager. What closing raises concerns saves that already failed: a run
        ending well has waited for its last save (`finish`), and a run stopped by an error must
        end with that error, not with this one."""
        try:
            self.manager.close()
        except Exception as error:  # noqa: BLE001 - reported, never raised over the real error
            self.report(f"Closing the checkpoints, an abandoned save failed: {_first_line(error)}")


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else "no message"


class WorkdirLock:
    """An exclusive lock on a workdir, held for the life of the run.

    The operating system releases it when the process ends however it ends (even SIGKILL), so
    a lock is never left stale.
    """

    def __init__(self, workdir: str | pathlib.Path):
        self.path = pathlib.Path(workdir) / ".lock"
        self._file = None

    def __enter__(self) -> "WorkdirLock":
        self._file = files.open_for_update(self.path)  # refused if it is a symbolic link
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            raise WorkdirInUseError(
                f"workdir {self.path.parent} is in use by a running job "
                f"(pid {holder}); wait for it to finish or choose another "
                "--workdir."
            ) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(str(os.getpid()))
        self._file.flush()
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


def read_state(workdir: str | pathlib.Path, step: int | None = None) -> dict:
    """A run's saved state as a plain tree of arrays on this process's first device, checked
    against its checksums.

    For reading checkpoints outside training (reports, export, transfer learning, tests),
    whatever the device count of the run that wrote them. `step` defaults to the newest
    checkpoint; a corrupt one raises CorruptCheckpointError naming the arrays and the others.
    """
    directory = pathlib.Path(workdir).absolute() / "checkpoints"
    steps = sorted(int(p.name) for p in directory.glob("*") if p.name.isdigit())
    if step is None:
        if not steps:
            raise MissingFileError(
                f"no checkpoint in {directory}; train first with launch.py --workdir {workdir}."
            )
        step = steps[-1]
    path = directory / str(step) / "state"
    if not path.exists():
        raise MissingFileError(
            f"no checkpoint of step {step} in {directory}; it has steps "
            f"{', '.join(map(str, steps)) or 'none'}."
        )
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    # The item's own metadata: a Checkpointer's `metadata` would also look for the step's
    # metadata file inside the item folder, where the manager never writes it, and warn.
    try:
        target = jax.tree.map(
            lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device),
            ocp.StandardCheckpointHandler().metadata(path),
        )
        state = ocp.StandardCheckpointer().restore(path, target)
    except Exception as error:  # noqa: BLE001 - orbax and tensorstore raise many types
        raise CheckpointError(
            f"checkpoint {step} in {directory} is unreadable ({type(error).__name__}: "
            f"{_first_line(error)}); {_other_steps(steps, step)}"
        ) from error
    sums = directory / str(step) / "checksums" / "metadata"
    if sums.exists():
        try:
            verify(step, state, json.loads(sums.read_text()))
        except (CorruptCheckpointError, ValueError) as error:
            raise CorruptCheckpointError(f"{error}; {_other_steps(steps, step)}") from None
    return state


def _other_steps(steps: list[int], bad: int) -> str:
    others = [str(s) for s in reversed(steps) if s != bad]
    if not others:
        return "no other checkpoint is kept."
    return f"the others kept are steps {', '.join(others)} (pass --step to use one)."
