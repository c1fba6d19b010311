"""The training loop: config in; metrics, checkpoints and `summary.json` out.

Data flows one way: config -> source -> pipeline -> step (model + task) -> metrics and
checkpoints. Starting again on the same workdir resumes from the newest checkpoint.
"""

import dataclasses
import functools
import json
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections
from tqdm import tqdm

from jaxconv import data, models, platform, tasks
from jaxconv.data import pipeline
from jaxconv.train import optimizer, parallel
from jaxconv.train import state as state_lib
from jaxconv.train import step as step_lib
from jaxconv.train.checkpoint import Checkpointer
from jaxconv.train.writers import MetricWriter


def say(message: str) -> None:
    """Prints on process 0 only, without breaking the progress bar."""
    if jax.process_index() == 0:
        tqdm.write(message)


def build_model(config: ml_collections.ConfigDict, num_classes: int):
    """The model `config.model` names; options left at None keep the model's own defaults."""
    options = {
        key: value
        for key, value in config.model.items()
        if key not in ("name", "dtype") and value is not None
    }
    return models.create(
        config.model.name, num_classes=num_classes, dtype=jnp.dtype(config.model.dtype), **options
    )


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


def evaluate(eval_step, state, source, config, mesh, sharding) -> dict[str, float]:
    total = None
    for batch in pipeline.eval_batches(
        source,
        batch_size=config.eval_batch_size,
        mean=config.data.mean,
        std=config.data.std,
        sharding=sharding,
    ):
        total = step_lib.add_metrics(total, eval_step(state, parallel.put_batch(batch, mesh)))
    return step_lib.mean_metrics(total)


def _check_finite(step: int, scalars: dict[str, float]) -> None:
    bad = sorted(name for name, value in scalars.items() if not math.isfinite(value))
    if bad:
        raise FloatingPointError(
            f"non-finite {', '.join(bad)} at step {step}; the last good "
            "checkpoint is kept. Lower learning_rate or set "
            "optimizer.grad_clip_norm."
        )


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    """Trains and evaluates as `config` says; returns (and writes) the run's summary."""
    started = time.perf_counter()
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mesh = parallel.make_mesh()
    parallel.check_batch_size(config.batch_size, mesh)
    parallel.check_batch_size(config.eval_batch_size, mesh, name="eval_batch_size")
    sharding = pipeline.Sharding(jax.process_index(), jax.process_count())
    loss_and_metrics = tasks.get(config.task)

    train_source = data.get_source(config.data.name, config.data.train_split, config.data.data_dir)
    eval_source = data.get_source(config.data.name, config.data.eval_split, config.data.data_dir)
    schedule = Schedule.from_config(config, len(train_source))
    model = build_model(config, train_source.num_classes)
    learning_rate = optimizer.schedule(config, schedule.steps_per_epoch, schedule.total_steps)
    tx = optimizer.create(config, learning_rate)
    input_shape = (1, *train_source.image_shape)
    state = parallel.create_state(
        functools.partial(
            state_lib.create, model, tx, input_shape, jax.random.PRNGKey(config.seed)
        ),
        mesh,
    )
    num_params = state_lib.count_parameters(state.params)

    train_iterator = pipeline.train_iterator(
        pipeline.train_dataset(
            train_source,
            batch_size=config.batch_size,
            seed=config.seed,
            augment_spec=config.data.augment,
            mean=config.data.mean,
            std=config.data.std,
            sharding=sharding,
        ),
        num_threads=config.data.num_threads,
        prefetch=config.data.prefetch,
    )
    checkpointer = Checkpointer(workdir, keep=config.keep_checkpoints)
    restored = checkpointer.restore_latest(state, train_iterator)
    if restored is not None:
        state = restored
    start_step = int(jax.device_get(state.step))
    say(
        f"{config.model.name}: {num_params:,} parameters; {config.data.name}: "
        f"{len(train_source):,} train / {len(eval_source):,} {config.data.eval_split} examples; "
        f"{schedule.total_steps:,} steps of {config.batch_size} on {mesh.size} "
        f"{jax.devices()[0].platform} device(s)."
    )
    if start_step:
        say(f"Resumed from the checkpoint at step {start_step} in {checkpointer.directory}.")

    writer = MetricWriter(workdir, resume_step=start_step)
    train_step = parallel.compile_train_step(
        step_lib.train_step, mesh, loss_and_metrics=loss_and_metrics
    )
    eval_step = parallel.compile_eval_step(
        step_lib.eval_step, mesh, loss_and_metrics=loss_and_metrics
    )
    eval_prefix = config.data.eval_split
    timing = {"train_seconds": 0.0, "train_images": 0}
    eval_scalars = {}
    try:
        state, eval_scalars = _train(
            config,
            schedule,
            state,
            train_iterator,
            train_step,
            eval_step,
            eval_source,
            mesh,
            sharding,
            writer,
            checkpointer,
            learning_rate,
            start_step,
            timing,
            eval_prefix,
        )
    finally:
        checkpointer.wait()
        checkpointer.close()
        writer.close()
    if not eval_scalars:  # the run was already complete: evaluate the restored state
        eval_scalars = {
            f"{eval_prefix}_{name}": value
            for name, value in evaluate(
                eval_step, state, eval_source, config, mesh, sharding
            ).items()
        }

    summary = {
        **eval_scalars,
        "steps": schedule.total_steps,
        "epochs": schedule.total_steps / schedule.steps_per_epoch,
        "resumed_from_step": start_step,
        "num_params": num_params,
        "wall_time_s": round(time.perf_counter() - started, 2),
        "train_time_s": round(timing["train_seconds"], 2),
        "train_images_per_s": round(timing["train_images"] / max(timing["train_seconds"], 1e-9), 1),
        "model": config.model.name,
        "dataset": config.data.name,
        "devices": f"{mesh.size} x {jax.devices()[0].device_kind}",
        "cpu": platform.cpu_model(),
    }
    if jax.process_index() == 0:
        (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _train(
    config,
    schedule,
    state,
    train_iterator,
    train_step,
    eval_step,
    eval_source,
    mesh,
    sharding,
    writer,
    checkpointer,
    learning_rate,
    start_step,
    timing,
    eval_prefix,
):
    """The step loop; returns the final state and the last evaluation's scalars."""
    progress = tqdm(
        total=schedule.total_steps,
        initial=start_step,
        unit="step",
        disable=jax.process_index() != 0,
        dynamic_ncols=True,
    )
    accumulated, eval_scalars = None, {}
    interval_start, interval_steps = time.perf_counter(), 0
    for step in range(start_step + 1, schedule.total_steps + 1):
        batch = parallel.put_batch(next(train_iterator), mesh)
        state, metrics = train_step(state, batch)
        accumulated = step_lib.add_metrics(accumulated, metrics)
        interval_steps += 1
        progress.update(1)

        if schedule.due(step, schedule.log_every):
            scalars = {
                f"train_{name}": value for name, value in step_lib.mean_metrics(accumulated).items()
            }
            _check_finite(step, scalars)
            seconds = time.perf_counter() - interval_start
            images_per_second = interval_steps * config.batch_size / seconds
            if step > start_step + interval_steps:  # the first interval includes compilation
                timing["train_seconds"] += seconds
                timing["train_images"] += interval_steps * config.batch_size
            scalars |= {
                "learning_rate": float(learning_rate(step - 1)),
                "images_per_second": images_per_second,
                "epoch": step / schedule.steps_per_epoch,
            }
            writer.write_scalars(step, scalars)
            progress.set_postfix(
                loss=f"{scalars['train_loss']:.4f}",
                acc=f"{scalars.get('train_accuracy', float('nan')):.3f}",
                img_s=f"{images_per_second:,.0f}",
            )
            accumulated, interval_steps = None, 0
            interval_start = time.perf_counter()

        if schedule.due(step, schedule.eval_every):
            pause = time.perf_counter()
            results = evaluate(eval_step, state, eval_source, config, mesh, sharding)
            eval_scalars = {f"{eval_prefix}_{name}": value for name, value in results.items()}
            writer.write_scalars(step, eval_scalars)
            say(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in eval_scalars.items()))
            interval_start += time.perf_counter() - pause  # evaluation is not training time

        if schedule.due(step, schedule.checkpoint_every):
            checkpointer.save(state, train_iterator)
    progress.close()
    writer.flush()
    return state, eval_scalars
