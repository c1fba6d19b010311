"""Training throughput against device count: steps/s and images/s of LeNet-5 (batch 128).

    python benchmarks/scaling.py [--devices 1,2,4,8] [--modes jit,pmap] [--steps 100] [--json]

Each device count runs in its own process (on CPU, `--xla_force_host_platform_device_count`
simulates N devices on the same cores, so this shows the cost of splitting, not a speed-up;
on a GPU machine the real devices are used). The global batch is the same for every count.
"""

import argparse
import json
import os
import subprocess
import sys

WORKER = r"""
import functools, json, sys, time
import jax, numpy as np, optax
from jaxconv import models, tasks
from jaxconv.train import parallel, step, state as state_lib
mode, devices, steps, batch_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), 128
if jax.device_count() < devices:
    sys.exit(f"asked for {devices} devices; this machine has {jax.device_count()}")
chosen = jax.devices()[:devices]
strategy = (parallel.JitStrategy(devices=chosen) if mode == "jit"
            else parallel.PmapStrategy(devices=chosen))
model = models.create("lenet5", num_classes=10)
create = functools.partial(state_lib.create, model, optax.adam(1e-3), (1, 28, 28, 1),
                           jax.random.PRNGKey(0))
state = strategy.create_state(create)
train_step = strategy.compile_train_step(step.train_step, model=model,
                                         loss_and_metrics=tasks.get("classification").loss_and_metrics)
rng = np.random.default_rng(0)
batch = {"image": rng.normal(size=(batch_size, 28, 28, 1)).astype(np.float32),
         "label": rng.integers(0, 10, batch_size).astype(np.int32)}
def run(count):
    # As the training loop does: each step waits for the one before it (the loop reads that
    # step's non-finite flag), so at most two are in flight. Unbounded queues of steps can
    # deadlock XLA:CPU's in-process all-reduce when simulated devices outnumber the cores.
    global state
    previous = None
    for _ in range(count):
        state, metrics = train_step(state, strategy.put_batch(batch))
        if previous is not None:
            jax.block_until_ready(previous)
        previous = metrics
    jax.block_until_ready(previous)
run(5)
start = time.perf_counter()
run(steps)
seconds = time.perf_counter() - start
print(json.dumps({"steps_per_s": steps / seconds, "images_per_s": steps * batch_size / seconds,
                  "platform": jax.devices()[0].platform}))
"""


def measure(mode: str, devices: int, steps: int) -> dict:
    from jaxconv.cpu import platform

    env = dict(os.environ)
    platform.configure_xla(env)  # the flags a jaxconv run uses, unless XLA_FLAGS is set
    if "cuda" not in env.get("JAX_PLATFORMS", ""):
        env["XLA_FLAGS"] += f" --xla_force_host_platform_device_count={devices}"
    result = subprocess.run(
        [sys.executable, "-c", WORKER, mode, str(devices), str(steps)],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise SystemExit(
            f"{mode} on {devices} device(s) failed ({result.returncode}):\n{result.stderr[-3000:]}"
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="1,2,4,8")
    parser.add_argument("--modes", default="jit,pmap")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from jaxconv.cpu import platform

    results = {
        mode: {count: measure(mode, int(count), args.steps) for count in args.devices.split(",")}
        for mode in args.modes.split(",")
    }
    if args.json:
        print(json.dumps(results))
        return
    print(f"CPU: {platform.cpu_model()} ({os.cpu_count()} cores); LeNet-5, global batch 128")
    print("| mode | devices | steps/s | images/s | vs 1 device |")
    print("|---|---|---|---|---|")
    for mode, rows in results.items():
        base = next(iter(rows.values()))["images_per_s"]
        for count, row in rows.items():
            print(
                f"| {mode} | {count} | {row['steps_per_s']:.1f} | {row['images_per_s']:,.0f} | "
                f"{row['images_per_s'] / base:.2f} |"
            )


if __name__ == "__main__":
    main()
