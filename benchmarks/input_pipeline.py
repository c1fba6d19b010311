"""Input pipeline throughput next to the training step's consumption rate.

    python benchmarks/input_pipeline.py [--json] [--batches 150] [--threads 4]

Times the training pipeline (`jaxconv.data.pipeline`: shuffled global batches of 128, augmented
with 'translate:2|flip_horizontal', normalised, read ahead by grain threads) on 28x28 images of
mnist_5k and, when its IDX files are present, fashion_mnist (held in memory, and read from its
array_record files), next to the jitted LeNet-5 training step on batches of the same shape: the
pipeline keeps up when its rate exceeds the step's, and the ratio is printed. The target is
20,000 images/s on 2 cores. Last, the rate at which the generated segmentation and denoising
sets (scattered_digits, noisy_patches) come through the same pipeline.
"""

import argparse
import contextlib
import json
import os
import sys
import time

from jaxconv.cpu import platform

AUGMENT = "translate:2|flip_horizontal"
TARGET_IMAGES_PER_S = 20_000


def pipeline_rate(source, *, batch_size: int, batches: int, threads: int, augment=AUGMENT) -> float:
    """Images per second through a training iterator, after a warm-up of a few batches."""
    from jaxconv.data import pipeline

    dataset = pipeline.train_dataset(
        source, batch_size=batch_size, seed=0, augment_spec=augment, mean=0.5, std=0.25
    )
    iterator = pipeline.train_iterator(dataset, num_threads=threads, prefetch=8)
    for _ in range(5):
        next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - started)


def step_rate(*, batch_size: int, steps: int) -> float:
    """Images per second that the jitted LeNet-5 training step consumes on 28x28x1 batches."""
    import functools

    import jax
    import numpy as np

    from jaxconv import models, tasks
    from jaxconv.configs import base
    from jaxconv.train import optimizer, parallel
    from jaxconv.train import state as state_lib
    from jaxconv.train import step as step_lib

    config = base.get_config()
    strategy = parallel.make_strategy(config)  # config.parallel.mode, 'jit' by default
    model = models.create("lenet5", num_classes=10)
    create = functools.partial(
        state_lib.create,
        model,
        optimizer.create(config, optimizer.schedule(config, 100, 1000)),
        (1, 28, 28, 1),
        jax.random.PRNGKey(0),
    )
    state = strategy.create_state(create)
    train_step = strategy.compile_train_step(
        step_lib.train_step,
        model=model,
        loss_and_metrics=tasks.get("classification").loss_and_metrics,
    )
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.standard_normal((batch_size, 28, 28, 1), np.float32),
        "label": rng.integers(0, 10, batch_size).astype(np.int32),
    }
    batch = strategy.put_batch(batch)
    for _ in range(5):  # compile and warm up
        state, metrics = train_step(state, batch)
    jax.block_until_ready(metrics)
    started = time.perf_counter()
    for _ in range(steps):
        state, metrics = train_step(state, batch)
    jax.block_until_ready(metrics)
    return steps * batch_size / (time.perf_counter() - started)


def measure(arguments) -> dict:
    from jaxconv import data
    from jaxconv.data import fashion_mnist

    timing = dict(batch_size=128, batches=arguments.batches, threads=arguments.threads)
    rates = {"mnist_5k": pipeline_rate(data.get_source("mnist_5k", "train"), **timing)}
    if fashion_mnist.find_files():
        for in_memory in (True, False):
            source = data.get_source("fashion_mnist", "train", options={"in_memory": in_memory})
            label = "fashion_mnist (in memory)" if in_memory else "fashion_mnist (records)"
            rates[label] = pipeline_rate(source, **timing)
    few = dict(timing, batches=max(10, arguments.batches // 10))
    generated = {
        "scattered_digits 64x64 canvases": pipeline_rate(
            data.get_source("scattered_digits", "train"), **few
        ),
        "noisy_patches 40x40 pairs": pipeline_rate(
            data.get_source("noisy_patches", "train"), **few, augment=""
        ),
    }
    return {
        "cpu": platform.cpu_model(),
        "cpu_count": os.cpu_count(),
        "batch_size": 128,
        "augment": AUGMENT,
        "pipeline_images_per_s": {name: round(rate) for name, rate in rates.items()},
        "generated_examples_per_s": {name: round(rate) for name, rate in generated.items()},
        "lenet5_step_images_per_s": round(step_rate(batch_size=128, steps=arguments.steps)),
        "target_images_per_s": TARGET_IMAGES_PER_S,
    }


def report(results: dict) -> str:
    step = results["lenet5_step_images_per_s"]
    lines = [
        f"CPU: {results['cpu']} ({results['cpu_count']} cores visible)",
        f"training pipeline, batch {results['batch_size']}, augment '{results['augment']}':",
    ]
    for name, rate in results["pipeline_images_per_s"].items():
        lines.append(f"  {name:34s} {rate:>9,} images/s   {rate / step:5.1f}x the LeNet-5 step")
    lines.append(f"LeNet-5 training step (jit, 28x28x1)  {step:>9,} images/s")
    lines.append("generated datasets through the same pipeline (U-Net and DnCNN inputs):")
    for name, rate in results["generated_examples_per_s"].items():
        lines.append(f"  {name:34s} {rate:>9,} examples/s")
    lines.append(f"target for 28x28 with augmentation: {results['target_images_per_s']:,} images/s")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--batches", type=int, default=150, help="timed batches per dataset")
    parser.add_argument("--steps", type=int, default=100, help="timed training steps")
    parser.add_argument("--threads", type=int, default=4, help="grain reader threads")
    arguments = parser.parse_args(argv)
    platform.configure_xla()  # before JAX starts, as launch.py does
    with contextlib.redirect_stdout(sys.stderr):  # TFDS's progress lines stay out of --json
        results = measure(arguments)
    print(json.dumps(results, indent=2) if arguments.json else report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
