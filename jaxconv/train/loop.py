"""The training loop: config in; metrics, checkpoints and `summary.json` out.

Data flows one way: config -> source -> pipeline -> step (model + task) -> metrics and
checkpoints. Starting again on the same workdir resumes from the newest readable checkpoint.
SIGTERM (a scheduler's preemption) or Ctrl-C saves a checkpoint before the run exits.
"""

import contextlib
import dataclasses
import itertools
import json
import math
import pathlib
import signal
import tempfile
import time

import jax
import jax.numpy as jnp
import ml_collections
from tqdm import tqdm

from jaxconv import data, tasks, transfer
from jaxconv.configs import checks
from jaxconv.cpu import fast_conv, planning, platform
from jaxconv.data import pipeline
from jaxconv.errors import ConfigError, NonFiniteError, WorkdirError
from jaxconv.models.from_config import build_model, check_model_input, with_fields
from jaxconv.train import optimizer, parallel
from jaxconv.train import state as state_lib
from jaxconv.train import step as step_lib
from jaxconv.train.previews import PredictionImages
from jaxconv.workdir import files, restore
from jaxconv.workdir.checkpoint import Checkpointer, WorkdirLock
from jaxconv.workdir.writers import MetricWriter


class Interrupted(Exception):
    """The run stopped on a signal after saving its checkpoint; `signal_number` says which."""

    def __init__(self, signal_number: int, step: int):
        super().__init__(
            f"stopped by {signal.Signals(signal_number).name} after saving the "
            f"checkpoint of step {step}; run the same command to resume."
        )
        self.signal_number = signal_number


def say(message: str) -> None:
    """Prints on process 0 only, without breaking the progress bar."""
    if jax.process_index() == 0:
        tqdm.write(message)


@dataclasses.dataclass
class Schedule:
    """How many steps a run takes and when it logs, evaluates and saves."""

    total_steps: int
    steps_per_epoch: int
    log_every: int
    eval_every: int
    checkpoint_every: int

    @classmethod
    def from_config(cls, config, num_train_examples: int) -> "Schedule":
        per_epoch = pipeline.steps_per_epoch(num_train_examples, config.batch_size)
        total = config.num_train_steps
        if total <= 0:
            total = max(1, int(math.ceil(config.num_epochs * per_epoch)))
        eval_every = config.eval_every_steps if config.eval_every_steps > 0 else per_epoch
        return cls(
            total,
            per_epoch,
            max(1, config.log_every_steps),
            eval_every,
            max(1, config.checkpoint_every_steps),
        )

    def due(self, step: int, every: int) -> bool:
        """Whether an event recurring `every` steps falls after update number `step`."""
        return step % every == 0 or step == self.total_steps


# A logging window that spent more than this share of its time waiting for the input
# pipeline is input-bound: the run says so (once).
INPUT_BOUND_SHARE = 0.25


class _Profile:
    """A jax.profiler trace of the steps `profile_steps` names ('START:END': steps START+1 to
    END), written by process 0 into `folder`."""

    def __init__(self, steps: str, folder: pathlib.Path):
        self.window = checks.profile_window(steps) if jax.process_index() == 0 else None
        self.folder, self.tracing = folder, False

    def starting(self, step: int) -> None:
        if self.window and step == self.window[0] + 1:
            jax.profiler.start_trace(str(self.folder))
            self.tracing = True

    def ended(self, step: int, state) -> None:
        if self.tracing and step == self.window[1]:
            jax.block_until_ready(state)
            self.stop()
            say(f"Profile of steps {self.window[0] + 1}-{step} written to {self.folder}.")

    def stop(self) -> None:
        if self.tracing:
            jax.profiler.stop_trace()
            self.tracing = False


class _SignalFlag:
    """Turns SIGTERM and SIGINT into a flag the loop checks after each step; a second Ctrl-C
    interrupts at once."""

    def __init__(self):
        self.received = None
        self._previous = {}

    def __enter__(self):
        for number in (signal.SIGTERM, signal.SIGINT):
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number, frame):
        if self.received is not None and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = number

    def __exit__(self, *exc):
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    """Trains and evaluates as `config` says; returns (and writes) the run's summary.

    A transfer config with `transfer.finetune_epochs` > 0 runs twice (see `transfer.phases`):
    the head in `workdir/head`, then every layer in `workdir/finetune`; the summary is the last
    run's, with the first run's under 'head'.
    """
    checks.check(config)
    summaries = {}
    for phase_workdir, phase_config in transfer.phases(config, workdir):
        summaries[phase_workdir.name] = _run_phase(phase_config, phase_workdir)
    summary = summaries.popitem()[1]
    return {**summary, **summaries}


# What a run writes in its workdir.
RUN_ENTRIES = (
    ".lock",
    "config.json",
    "config_changes.jsonl",
    "metrics.jsonl",
    "summary.json",
    "conv_plans.json",
    "checkpoints",
    "tensorboard",
    "report",
)


def _run_phase(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    workdir = pathlib.Path(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=workdir).close()  # a new file of its own: never a link
    except OSError as error:
        raise WorkdirError(
            f"workdir {workdir} is not writable ({error.strerror}); choose "
            "another --workdir or fix its permissions."
        ) from None
    for name in RUN_ENTRIES:  # jaxconv's own entries: never written through a link
        files.refuse_link(workdir / name)
    # Process 0 holds the lock for the whole multi-host job (the workdir is shared).
    lock = WorkdirLock(workdir) if jax.process_index() == 0 else contextlib.nullcontext()
    with lock, _SignalFlag() as signals:
        changes = accepted_changes(config, workdir)
        return _Run(config, workdir, signals, changes).execute()


def accepted_changes(config, workdir: pathlib.Path) -> dict[str, tuple]:
    """Every config key a resume changes ({} for a new run), each recorded when the run
    starts. A change of a key outside `base.RESUMABLE_KEYS` raises ConfigError with the keys'
    diff, before anything is written, unless `config.resume_changes` is 'allow'."""
    has_checkpoints = any(p.name.isdigit() for p in (workdir / "checkpoints").glob("*"))
    if not (workdir / "config.json").exists() or not has_checkpoints:
        return {}
    everything = checks.config_diff(restore.load_config(workdir), config)
    changes = {key: values for key, values in everything.items() if not checks.resumable(key)}
    if changes and config.resume_changes != "allow":
        diff = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())
        raise ConfigError(
            f"{workdir} holds a run of another config ({diff}); resuming would mix the two. "
            "Use a new --workdir, restore those settings, or pass "
            "--config.resume_changes=allow to continue with the change (it is recorded in "
            "config_changes.jsonl)."
        )
    return everything


class _Run:
    """One run's pieces, built from the config; `execute` trains, evaluates and summarises."""

    def __init__(self, config, workdir: pathlib.Path, signals: _SignalFlag, changes: dict):
        self.started = time.perf_counter()
        self.config, self.workdir, self.signals = config, workdir, signals
        self.changes = changes
        self.parallel = parallel.make_strategy(config)
        devices = self.parallel.device_count
        parallel.check_batch_size(config.batch_size, devices)
        # Evaluation pads its last batch and masks the padding, so its batch may grow to the
        # next multiple of the device count: every example is still counted once.
        self.eval_batch_size = -(-config.eval_batch_size // devices) * devices
        if config.batch_size % (devices * config.num_microbatches):
            raise ConfigError(
                f"batch_size={config.batch_size} does not split into "
                f"{config.num_microbatches} micro-batches on each of {devices} "
                "devices; use a multiple of "
                f"{devices * config.num_microbatches}."
            )
        if config.on_nonfinite not in ("stop", "skip"):
            raise ConfigError(f"on_nonfinite='{config.on_nonfinite}'; use 'stop' or 'skip'.")
        split = config.data.eval_split
        if config.best_metric and not config.best_metric.startswith(f"{split}_"):
            # Otherwise no evaluation would ever name it, and no checkpoint would be the best.
            raise ConfigError(
                f"best_metric='{config.best_metric}' is not a metric of the evaluation split "
                f"'{split}' (its metrics are named {split}_<metric>); set best_metric to one "
                "of them, or data.eval_split to the split it names."
            )
        self.sharding = pipeline.Sharding(jax.process_index(), jax.process_count())
        self.task = tasks.get(config.task, config)
        loss_and_metrics = self.task.loss_and_metrics
        self.train_source = data.get_source(
            config.data.name, config.data.train_split, config.data.data_dir, config.data
        )
        self.eval_source = data.get_source(
            config.data.name, config.data.eval_split, config.data.data_dir, config.data
        )
        self.schedule = Schedule.from_config(config, len(self.train_source))
        model = build_model(config, self.task.output_size(self.train_source))
        model = with_fields(model, batch_norm_axis=self.parallel.batch_norm_axis)
        input_shape = (config.batch_size, *self.train_source.image_shape)
        check_model_input(model, config, input_shape)
        self.learning_rate = optimizer.schedule(
            config, self.schedule.steps_per_epoch, self.schedule.total_steps
        )
        trainable = config.transfer.trainable
        tx = transfer.freeze(optimizer.create(config, self.learning_rate), trainable)

        def create():
            return state_lib.create(
                model,
                tx,
                (1, *input_shape[1:]),
                jax.random.PRNGKey(config.seed),
                ema=config.optimizer.ema_decay > 0,
            )

        self.state = self.parallel.create_state(create)
        if config.transfer.source:
            # Pretrained variables replace the initial ones; a checkpoint of this run, restored
            # in execute(), replaces both.
            pretrained = transfer.load(config.transfer.source, config.model.name)
            state = self.parallel.to_saved(self.state)
            state = transfer.load_into_state(state, pretrained, config.transfer.dont_load)
            self.state = self.parallel.from_saved(state)
        train_batches = pipeline.train_dataset(
            self.train_source,
            batch_size=config.batch_size,
            seed=config.seed,
            augment_spec=config.data.augment,
            mean=config.data.mean,
            std=config.data.std,
            sharding=self.sharding,
        )
        self.train_iterator = pipeline.train_iterator(
            train_batches, num_threads=config.data.num_threads, prefetch=config.data.prefetch
        )
        self.checkpointer = Checkpointer(
            workdir,
            keep=config.keep_checkpoints,
            best_metric=config.best_metric or None,
            best_mode=config.best_mode,
        )
        self.start_step = self._restore()
        bound = dict(
            loss_and_metrics=loss_and_metrics,
            num_microbatches=config.num_microbatches,
            ema_decay=config.optimizer.ema_decay,
            auxiliary_loss_weight=config.auxiliary_loss_weight,
        )
        # Evaluation, forward only and rarer, keeps XLA's convolution.
        self.eval_step = self.parallel.compile_eval_step(
            step_lib.eval_step, model=model, loss_and_metrics=loss_and_metrics
        )
        planned = self._planned(model, input_shape[1:], train_batches, bound)
        self.train_step = self.parallel.compile_train_step(
            step_lib.train_step, model=transfer.freeze_model(planned, trainable), **bound
        )
        self.train_seconds, self.train_images, self.skipped = 0.0, 0, 0
        self.train_input_seconds = 0.0
        self.eval_scalars: dict[str, float] = {}
        self.prediction_images = None
        # Every process draws them (the model's parameters may span all hosts, so applying it
        # is a collective), and process 0's writer writes them.
        if config.num_prediction_images > 0:
            self.prediction_images = PredictionImages(
                config, model, self.eval_source, count=config.num_prediction_images
            )

    def _planned(self, model, image_shape, train_batches, bound):
        """On CPU with `config.fast_conv`, `model` computing each convolution of the training
        step by the formulations fastest for its shape on this machine (jaxconv/cpu/planning.py);
        else `model` as it is.

        The network-level check times the training step itself (`bound` as the run binds it)
        on the run's first batch (read from `train_batches`, the iterator left untouched), on a
        copy of the state: the step donates the state it is given."""
        config = self.config
        if not config.fast_conv or jax.default_backend() != "cpu":
            return model
        rows = config.batch_size // config.num_microbatches
        if config.parallel.mode == "pmap":  # each device traces its own rows
            rows //= self.parallel.device_count
        variables = self.parallel.to_saved(self.state).variables()
        # Under jit over several devices XLA partitions the step; each pmap device runs its own.
        partitioned = config.parallel.mode != "pmap" and self.parallel.device_count > 1
        trainable = config.transfer.trainable

        def with_plans(plans):
            convolution = fast_conv.PlannedConvolution.of(plans, partitioned)
            return with_fields(model, convolution=convolution)

        def forward(convolution, variables, images):
            # Traced outside pmap, where no device axis is bound: batch norm on this one batch.
            rngs = {"dropout": jax.random.PRNGKey(0)}
            network = with_fields(model, convolution=convolution, batch_norm_axis=None)
            return network.apply(variables, images, train=True, rngs=rngs, mutable=["batch_stats"])

        training_step = parallel.trial_steps(
            self.parallel,
            step_lib.train_step,
            self.state,
            lambda: train_batches[0],
            lambda plans: transfer.freeze_model(with_plans(plans), trainable),
            **bound,
        )
        images = jax.ShapeDtypeStruct((rows, *image_shape), jnp.float32)
        plans = planning.plan(
            forward,
            variables,
            images,
            path=self.workdir / "conv_plans.json",
            log=say,
            partitioned=partitioned,
            training_step=training_step,
        )
        return with_plans(plans)

    def _restore(self) -> int:
        """Restores the newest good checkpoint into the state and the iterator; its step (0
        for a new run). Nothing is written before a resume is accepted."""
        saved_form = self.parallel.to_saved(self.state)
        restored = self.checkpointer.restore_latest(saved_form, self.train_iterator)
        if restored is None:
            return 0
        self.state = self.parallel.from_saved(restored)
        step = int(jax.device_get(restored.step))
        if step > self.schedule.total_steps:
            raise ConfigError(
                f"the checkpoint in {self.checkpointer.directory} is at step {step}, past this "
                f"config's {self.schedule.total_steps} steps; set num_train_steps to {step} or "
                "more (or num_epochs to match), or use a new --workdir."
            )
        return step

    def execute(self) -> dict:
        start_step = self.start_step
        if jax.process_index() == 0:  # what the report and later tools rebuild the run from
            files.write_text(
                self.workdir / "config.json", self.config.to_json_best_effort(indent=2)
            )
            if self.changes:
                record = {"step": start_step, "changes": self.changes}
                with files.open_for_append(self.workdir / "config_changes.jsonl") as file:
                    file.write(json.dumps(record, default=list) + "\n")
        num_params = state_lib.count_parameters(self.parallel.to_saved(self.state).params)
        say(
            f"{self.config.model.name}: {num_params:,} parameters; {self.config.data.name}: "
            f"{len(self.train_source):,} train / {len(self.eval_source):,} "
            f"{self.config.data.eval_split} examples; {self.schedule.total_steps:,} steps of "
            f"{self.config.batch_size} on {self.parallel.device_count} "
            f"{jax.devices()[0].platform} device(s), {self.config.parallel.mode}."
        )
        if start_step:
            say(
                f"Resumed from the checkpoint of step {start_step} in "
                f"{self.checkpointer.directory}."
            )
            if self.changes:
                say(f"Config changed on resume: {', '.join(self.changes)} (config_changes.jsonl).")
        self.writer = MetricWriter(self.workdir, resume_step=start_step, report=say)
        try:
            self._train(start_step)
            # The last step's checkpoint, saved again if its folder vanished while it was written.
            self.checkpointer.finish(
                self.parallel.to_saved(self.state), self.train_iterator, self.eval_scalars or None
            )
        except BaseException:
            self._close(quietly=True)  # the error that stopped the run is the one shown
            raise
        self._close(quietly=False)
        if not self.eval_scalars:  # the run was already complete: evaluate what was restored
            self.eval_scalars = self.evaluate()
        summary = self._summarise(start_step, num_params)
        self._check_skipped(start_step)
        return summary

    def _close(self, quietly: bool) -> None:
        """Closes the metric writer and the checkpointer. `quietly` (an error is already on
        its way) reports a failure to close instead of raising it over that error."""
        for close in (self.writer.close, self.checkpointer.close):
            try:
                close()
            except Exception as error:
                if not quietly:
                    raise
                say(f"While stopping, closing failed too ({type(error).__name__}: {error}).")

    def _check_skipped(self, start_step: int) -> None:
        """Ends a run that skipped more than `max_skipped_share` of its steps with an error
        (its checkpoint and summary are saved): its figures describe too few updates."""
        steps = self.schedule.total_steps - start_step
        if not steps or self.skipped / steps <= self.config.max_skipped_share:
            return
        raise NonFiniteError(
            f"{self.skipped} of this run's {steps} steps had a non-finite loss or gradient and "
            f"were skipped (more than max_skipped_share={self.config.max_skipped_share}); its "
            "results describe too few updates. Lower learning_rate or set "
            "optimizer.grad_clip_norm; the last checkpoint is kept."
        )

    def _train(self, start_step: int) -> None:
        schedule = self.schedule
        progress = tqdm(
            total=schedule.total_steps,
            initial=start_step,
            unit="step",
            disable=jax.process_index() != 0,
            dynamic_ncols=True,
        )
        self.accumulated, self.interval_start = None, time.perf_counter()
        self.interval_steps, self.first_interval, self.first_counted = 0, True, False
        self.interval_input, self.input_bound_said = 0.0, False
        previous_nonfinite, self.checked_finite_step = None, start_step
        profile = _Profile(self.config.profile_steps, self.workdir / "profile")
        try:
            for step in range(start_step + 1, schedule.total_steps + 1):
                previous_nonfinite = self._train_step(step, previous_nonfinite, progress, profile)
        finally:
            profile.stop()
        progress.close()
        self.writer.flush()

    def _train_step(self, step: int, previous_nonfinite, progress, profile):
        """One step, and what falls due after it (logs, evaluation, checkpoint, signals);
        returns the step's non-finite flag, read at the next step."""
        schedule = self.schedule
        profile.starting(step)
        waited = time.perf_counter()
        batch = self.parallel.put_batch(next(self.train_iterator))
        self.interval_input += time.perf_counter() - waited
        self.state, metrics = self.train_step(self.state, batch)
        profile.ended(step, self.state)
        # Read the previous step's flag: it is done by now, so this costs no stall.
        if previous_nonfinite is not None:
            self._check_finite(step - 1, previous_nonfinite)
        previous_nonfinite = metrics["nonfinite"][0]
        self.accumulated = step_lib.add_metrics(self.accumulated, metrics)
        self.interval_steps += 1
        progress.update(1)
        if schedule.due(step, schedule.log_every):
            self._check_finite(step, previous_nonfinite)
            progress.set_postfix(self._log(step))
        evaluated = schedule.due(step, schedule.eval_every)
        if evaluated:
            self._timed_out(self._evaluate_and_log, step)
        # Read once: a signal arriving after the save below must wait for the next step.
        received = self.signals.received
        if schedule.due(step, schedule.checkpoint_every) or received:
            self._check_finite(step, previous_nonfinite)
            saved = self.parallel.to_saved(self.state)
            saved_metrics = self.eval_scalars if evaluated else None
            self.checkpointer.save(saved, self.train_iterator, saved_metrics)
        if received:
            self.checkpointer.finish(saved, self.train_iterator, saved_metrics)
            progress.close()
            raise Interrupted(received, step)
        return previous_nonfinite

    def _check_finite(self, step: int, nonfinite) -> None:
        """Stops at a step whose loss or gradient was not finite, or (on_nonfinite='skip')
        says it was skipped, once per step."""
        if step <= self.checked_finite_step or not float(nonfinite) > 0:
            return
        self.checked_finite_step = step
        if self.config.on_nonfinite == "stop":
            raise NonFiniteError(
                f"non-finite loss or gradient at step {step}; the update was not applied and "
                "the last good checkpoint is kept. Lower learning_rate, set "
                "optimizer.grad_clip_norm, or set on_nonfinite='skip' to skip such batches."
            )
        self.skipped += 1
        say(f"step {step}: non-finite loss or gradient; the update was skipped.")

    def _log(self, step: int) -> dict:
        scalars = {
            f"train_{name}": value
            for name, value in self.task.summarise(step_lib.mean_metrics(self.accumulated)).items()
        }
        seconds = time.perf_counter() - self.interval_start
        images = self.interval_steps * self.config.batch_size
        waited = min(self.interval_input, seconds)
        # The first interval includes compilation: it counts only when there is no other.
        if not self.first_interval or not self.train_seconds:
            if not self.first_interval and self.first_counted:
                self.train_seconds, self.train_images, self.train_input_seconds = 0.0, 0, 0.0
            self.first_counted = self.first_interval
            self.train_seconds += seconds
            self.train_images += images
            self.train_input_seconds += waited
        scalars |= {
            "learning_rate": float(self.learning_rate(step - 1)),
            "images_per_second": images / seconds,
            "epoch": step / self.schedule.steps_per_epoch,
            "input_seconds": waited / self.interval_steps,
            "step_seconds": (seconds - waited) / self.interval_steps,
            "input_wait_share": waited / seconds,
        }
        if not self.first_interval and waited / seconds > INPUT_BOUND_SHARE:
            if not self.input_bound_said:
                say(
                    f"step {step}: input-bound: {waited / seconds:.0%} of the last "
                    f"{self.interval_steps} steps' time went waiting for data; raise "
                    "data.num_threads or data.prefetch, or lighten data.augment."
                )
            self.input_bound_said = True
        self.writer.write_scalars(step, scalars)
        self.accumulated, self.interval_steps, self.first_interval = None, 0, False
        self.interval_input, self.interval_start = 0.0, time.perf_counter()
        return {
            "loss": f"{scalars['train_loss']:.4f}",
            **({"acc": f"{scalars['train_accuracy']:.3f}"} if "train_accuracy" in scalars else {}),
            "img/s": f"{scalars['images_per_second']:,.0f}",
        }

    def _timed_out(self, function, *args):
        """Runs `function` without counting its time as training time."""
        paused = time.perf_counter()
        function(*args)
        self.interval_start += time.perf_counter() - paused

    def evaluate(self) -> dict[str, float]:
        """The task's metrics over the evaluation split (its first `num_eval_steps` batches when
        that is set), e.g. {'test_accuracy': ...}."""
        total = None
        batches = pipeline.eval_batches(
            self.eval_source,
            batch_size=self.eval_batch_size,
            mean=self.config.data.mean,
            std=self.config.data.std,
            sharding=self.sharding,
        )
        if self.config.num_eval_steps > 0:
            batches = itertools.islice(batches, self.config.num_eval_steps)
        for batch in batches:
            metrics = self.eval_step(self.state, self.parallel.put_batch(batch))
            total = step_lib.add_metrics(total, metrics)
        prefix = self.config.data.eval_split
        results = self.task.summarise(step_lib.mean_metrics(total))
        return {f"{prefix}_{name}": value for name, value in results.items()}

    def _evaluate_and_log(self, step: int) -> None:
        self.eval_scalars = self.evaluate()
        self.writer.write_scalars(step, self.eval_scalars)
        if self.prediction_images is not None:
            variables = self.parallel.to_saved(self.state).variables(for_eval=True)
            self.writer.write_images(step, self.prediction_images(variables))
        say(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in self.eval_scalars.items()))

    def _summarise(self, start_step: int, num_params: int) -> dict:
        summary = {
            **self.eval_scalars,
            "steps": self.schedule.total_steps,
            "epochs": round(self.schedule.total_steps / self.schedule.steps_per_epoch, 3),
            "resumed_from_step": start_step,
            "skipped_steps": self.skipped,
            "num_params": num_params,
            "wall_time_s": round(time.perf_counter() - self.started, 2),
            "train_time_s": round(self.train_seconds, 2),
            "train_images_per_s": round(self.train_images / max(self.train_seconds, 1e-9), 1),
            "input_wait_share": round(self.train_input_seconds / max(self.train_seconds, 1e-9), 3),
            "model": self.config.model.name,
            "dataset": self.config.data.name,
            "devices": f"{self.parallel.device_count} x {jax.devices()[0].device_kind}",
            "parallel": self.config.parallel.mode,
            "cpu": platform.cpu_model(),
        }
        path = self.workdir / "summary.json"
        if start_step >= self.schedule.total_steps:  # nothing trained: keep the training's own
            summary |= {key: value for key, value in _read_summary(path).items() if key in TIMINGS}
        if jax.process_index() == 0:
            files.write_json(path, summary)
        return summary


# What summary.json says of the training itself, kept when a finished run is started again.
TIMINGS = (
    "resumed_from_step",
    "skipped_steps",
    "wall_time_s",
    "train_time_s",
    "train_images_per_s",
    "input_wait_share",
    "devices",
    "parallel",
    "cpu",
)


def _read_summary(path: pathlib.Path) -> dict:
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}
