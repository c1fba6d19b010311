"""Training speed against PyTorch: images/s of one training step, same architecture and batch.

    python benchmarks/train_throughput.py [--models lenet5,resnet18,unet] [--seconds 20]
                                          [--rounds 4] [--json]

For each model (LeNet-5 on 28x28 batch 128; the CIFAR-style ResNet-18 on 32x32 batch 64; U-Net
'same', 4 levels of 64-512 channels with batch norm, 11 classes, on 64x64 batch 16) this times
four variants, each in a process of its own:

- `jaxconv`: jaxconv's training step as a run uses it (jaxconv.train.step under jit, on CPU
  the convolutions planned by jaxconv.cpu.planning, the XLA flags and the allocator
  setting of jaxconv.cpu.platform);
- `jaxconv_xla`: the same step with `fast_conv` off (XLA's convolutions, same flags);
- `torch_eager` and `torch_channels_last`: the same network written in PyTorch (CPU build),
  NCHW and channels_last memory formats.

The four processes are started one after another (each compiles, and jaxconv's plans its
convolutions, while the others wait), then take turns: `--rounds` rounds, in each of which
every variant times whole steps for `--seconds / --rounds` seconds while the others sleep, the
order rotating from round to round. So a machine whose speed drifts (a shared VM's does, by up
to 2x over minutes) slows every variant alike, and each round gives a ratio of its own: the
table shows the ratio over all rounds and the range of the rounds' ratios.

Every process, PyTorch's too, runs with jaxconv's allocator setting
(jaxconv.cpu.platform.keep_freed_memory), so the ratio compares the frameworks and not malloc
settings. All use SGD with momentum 0.9 on synthetic batches, cross-entropy (per pixel for
U-Net). The ratio is jaxconv / PyTorch's faster variant. GFLOP/s counts 3x the forward pass's
FLOPs (jaxconv.models.summary) per image and is set against this machine's float32 matmul peak
(XLA's best 2048x2048 product, measured by the jaxconv process after the rounds). PyTorch is an
optional dependency: `pip install torch`; without it the PyTorch columns are empty.
"""

import argparse
import json
import os
import subprocess
import sys

MODELS = {
    # name: (image size, channels, batch, classes)
    "lenet5": (28, 1, 128, 10),
    "resnet18": (32, 3, 64, 10),
    "unet": (64, 1, 16, 11),
}
VARIANTS = ("jaxconv", "jaxconv_xla", "torch_eager", "torch_channels_last")


def jaxconv_step(model, shape: tuple, classes: int, task: str, planned: bool):
    """`one_step()`, one training step of `model` as a run takes it (jaxconv.train.step under
    jit on one device, the old state donated; on CPU the convolutions planned by
    jaxconv.cpu.planning where `planned`, and the allocator setting of launch.py) on a
    synthetic batch of `shape`, SGD with momentum 0.9; and the plans."""
    import functools

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from jaxconv import tasks
    from jaxconv.cpu import fast_conv, planning, platform
    from jaxconv.train import parallel, step
    from jaxconv.train import state as state_lib

    if jax.default_backend() == "cpu":
        platform.keep_freed_memory()  # as launch.py does
    strategy = parallel.JitStrategy(devices=jax.devices()[:1])
    sgd = optax.sgd(0.01, momentum=0.9)
    create = functools.partial(state_lib.create, model, sgd, (1, *shape[1:]), jax.random.PRNGKey(0))
    state = strategy.create_state(create)
    rng = np.random.default_rng(0)
    label_shape = shape[:1] if task == "classification" else shape[:3]
    batch = {
        "image": rng.normal(size=shape).astype(np.float32),
        "label": rng.integers(0, classes, label_shape).astype(np.int32),
    }
    bound = dict(loss_and_metrics=tasks.get(task).loss_and_metrics)
    plans = None
    if planned and jax.default_backend() == "cpu":

        def forward(convolution, variables, images):
            planned = model.clone(convolution=convolution)
            return planned.apply(variables, images, train=True, mutable=["batch_stats"])

        def model_with_plans(plans):
            return model.clone(convolution=fast_conv.PlannedConvolution.of(plans))

        # What the network-level check times: the training step itself, as launch.py's.
        training_step = parallel.trial_steps(
            strategy, step.train_step, state, lambda: batch, model_with_plans, **bound
        )
        images = jax.ShapeDtypeStruct(shape, jnp.float32)
        plans = planning.plan(
            forward, state.variables(), images, log=print, training_step=training_step
        )
        model = model_with_plans(plans)
    train_step = strategy.compile_train_step(step.train_step, model=model, **bound)
    arrays = strategy.put_batch(batch)

    def one_step():
        nonlocal state
        state, metrics = train_step(state, arrays)
        jax.block_until_ready(metrics)

    return one_step, plans


def jax_worker(name: str, planned: bool):
    """jaxconv's training step on one device, and the figures its process adds at the end
    (GFLOP per step, the matmul peak, how many convolutions were planned)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxconv import models
    from jaxconv.cpu import fast_conv

    size, channels, batch, classes = MODELS[name]
    task = "segmentation" if name == "unet" else "classification"
    model = {
        "lenet5": lambda: models.create("lenet5", num_classes=classes),
        "resnet18": lambda: models.create("resnet18", num_classes=classes, stem="cifar"),
        "unet": lambda: models.create("unet_same", num_classes=classes, depth=4, width=64),
    }[name]()
    shape = (batch, size, size, channels)
    one_step, plans = jaxconv_step(model, shape, classes, task, planned)
    rng = np.random.default_rng(1)

    def figures() -> dict:
        square = jnp.asarray(rng.normal(size=(2048, 2048)), jnp.float32)
        matmul = jax.jit(lambda a: a @ a)
        best = min(timed(lambda: jax.block_until_ready(matmul(square)), 0.0, repeats=10)[2])
        return {
            "gflop_per_step": 3 * models.summary(model, shape).flops / 1e9,  # fwd, both grads
            "peak_gflop_s": 2 * 2048**3 / best / 1e9,
            "planned": sum(plan != fast_conv.XLA_PLAN for plan in (plans or {}).values()),
        }

    return one_step, figures


def timed(fn, seconds: float, repeats: int = 1, warmup: int = 3):
    """Calls `fn` `warmup` times, then until `seconds` have passed (and `repeats` times at
    least): (calls, seconds spent, each call's seconds)."""
    import time

    for _ in range(warmup):
        fn()
    times = []
    while sum(times) < seconds or len(times) < repeats:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return len(times), sum(times), times


def torch_model(name: str):
    """The same networks in PyTorch: LeNet-5, the CIFAR-style ResNet-18, U-Net 'same'."""
    import torch
    from torch import nn

    _, channels, _, classes = MODELS[name]

    def conv_bn(cin, cout, kernel=3, stride=1):
        conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        return nn.Sequential(conv, nn.BatchNorm2d(cout))

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.branch = nn.Sequential(
                conv_bn(cin, cout, 3, stride), nn.ReLU(), conv_bn(cout, cout)
            )
            projection = stride != 1 or cin != cout
            self.shortcut = conv_bn(cin, cout, 1, stride) if projection else nn.Identity()

        def forward(self, x):
            return torch.relu(self.branch(x) + self.shortcut(x))

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            blocks, cin = [conv_bn(channels, 64), nn.ReLU()], 64
            for index, width in enumerate((64, 128, 256, 512)):
                for block in range(2):
                    blocks.append(Block(cin, width, 2 if index and not block else 1))
                    cin = width
            self.body = nn.Sequential(*blocks)
            self.head = nn.Linear(512, classes)

        def forward(self, x):
            return self.head(self.body(x).mean((2, 3)))

    def double_conv(cin, cout):
        return nn.Sequential(conv_bn(cin, cout), nn.ReLU(), conv_bn(cout, cout), nn.ReLU())

    class UNet(nn.Module):
        def __init__(self, depth=4, width=64):
            super().__init__()
            widths = [width * 2**level for level in range(depth + 1)]
            inputs = [channels, *widths[: depth - 1]]
            self.down = nn.ModuleList(double_conv(inputs[i], widths[i]) for i in range(depth))
            self.bottom = double_conv(widths[depth - 1], widths[depth])
            levels = list(reversed(range(depth)))
            self.up = nn.ModuleList(
                nn.ConvTranspose2d(widths[i + 1], widths[i], 2, 2) for i in levels
            )
            self.decode = nn.ModuleList(double_conv(2 * widths[i], widths[i]) for i in levels)
            self.head = nn.Conv2d(width, classes, 1)

        def forward(self, x):
            skips = []
            for block in self.down:
                x = block(x)
                skips.append(x)
                x = nn.functional.max_pool2d(x, 2)
            x = self.bottom(x)
            for up, block in zip(self.up, self.decode):
                x = block(torch.cat([skips.pop(), up(x)], 1))
            return self.head(x)

    def lenet5():
        return nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, classes),
        )  # fmt: skip

    return {"lenet5": lenet5, "resnet18": ResNet18, "unet": UNet}[name]()


def torch_worker(name: str, channels_last: bool):
    """The PyTorch twin's training step, and its thread count."""
    import torch

    from jaxconv.cpu import platform

    platform.keep_freed_memory()  # the same allocator as jaxconv's processes
    size, channels, batch, classes = MODELS[name]
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model = torch_model(name).to(memory_format=memory)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(batch, channels, size, size).contiguous(memory_format=memory)
    label_shape = (batch, size, size) if name == "unet" else (batch,)
    labels = torch.randint(0, classes, label_shape)

    def one_step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    return one_step, lambda: {"threads": torch.get_num_threads()}


def serve(variant: str, model: str) -> None:
    """A worker process: sets the variant up, says it is ready, then times one window of
    steps per request on stdin (a number of seconds) until an empty line, and ends with its
    figures. One JSON object per line on stdout; anything else the process prints (the
    planner's log) goes to stderr."""
    protocol, sys.stdout = sys.stdout, sys.stderr
    if variant.startswith("jaxconv"):
        one_step, figures = jax_worker(model, planned=variant == "jaxconv")
    else:
        one_step, figures = torch_worker(model, channels_last=variant == "torch_channels_last")
    say = lambda message: print(json.dumps(message), file=protocol, flush=True)  # noqa: E731
    say({"ready": True})
    for line in sys.stdin:
        if not line.strip():
            break
        steps, spent, _ = timed(one_step, float(line), warmup=1)  # one step warms the caches
        say({"steps": steps, "seconds": spent})
    say(figures())


class Worker:
    """One variant's process (see `serve`)."""

    def __init__(self, variant: str, model: str):
        env = dict(os.environ)
        if variant.startswith("jaxconv"):
            from jaxconv.cpu import platform

            platform.configure_xla(env)  # the flags a jaxconv run uses, unless XLA_FLAGS is set
        self.name = f"{variant} {model}"
        command = [sys.executable, __file__, "--worker", variant, model]
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._read()  # set up: compiled (and planned) before the next worker starts

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise SystemExit(f"{self.name} failed ({code}); its error is above")
        return json.loads(line)

    def time(self, seconds: float) -> dict:
        self.process.stdin.write(f"{seconds}\n")
        self.process.stdin.flush()
        return self._read()

    def finish(self) -> dict:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        figures = self._read()
        self.process.wait()
        return figures


def variants() -> tuple[str, ...]:
    """The variants this machine can run: PyTorch's only where it is installed."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return VARIANTS[:2]
    return VARIANTS


def measure(model: str, seconds: float, rounds: int) -> dict:
    """Every variant's windows, taking turns (see the module docstring), and its figures."""
    names = variants()
    workers = {variant: Worker(variant, model) for variant in names}
    windows = {variant: [] for variant in names}
    for index in range(rounds):
        for variant in names[index % len(names) :] + names[: index % len(names)]:
            windows[variant].append(workers[variant].time(seconds / rounds))
    figures = {variant: worker.finish() for variant, worker in workers.items()}
    return summarise(windows, figures, batch=MODELS[model][2])


def summarise(windows: dict, figures: dict, batch: int) -> dict:
    """The benchmark's row for one model from each variant's timed windows: images/s over all
    windows, the ratio jaxconv / best PyTorch over all of them and its range over the rounds."""
    rate = lambda runs: batch * sum(r["steps"] for r in runs) / sum(r["seconds"] for r in runs)  # noqa: E731
    img_s = {variant: rate(runs) for variant, runs in windows.items()}
    torch_variants = [v for v in ("torch_eager", "torch_channels_last") if v in windows]
    best = max(torch_variants, key=img_s.get) if torch_variants else None
    per_round = []
    if best:
        for index in range(len(windows["jaxconv"])):
            rates = [rate([windows[v][index]]) for v in torch_variants]
            per_round.append(rate([windows["jaxconv"][index]]) / max(rates))
    steps_per_s = img_s["jaxconv"] / batch
    return {
        "jaxconv_img_s": img_s["jaxconv"],
        "torch_img_s": best and img_s[best],
        "ratio": best and img_s["jaxconv"] / img_s[best],
        "ratio_range": [min(per_round), max(per_round)] if per_round else None,
        "jaxconv_xla_img_s": img_s["jaxconv_xla"],
        "torch_eager_img_s": img_s.get("torch_eager"),
        "torch_channels_last_img_s": img_s.get("torch_channels_last"),
        "jaxconv_gflop_s": steps_per_s * figures["jaxconv"]["gflop_per_step"],
        "matmul_peak_gflop_s": figures["jaxconv"]["peak_gflop_s"],
        "planned_convolutions": figures["jaxconv"]["planned"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seconds", type=float, default=20.0, help="timed per variant")
    parser.add_argument("--rounds", type=int, default=4, help="turns the variants take")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("VARIANT", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return serve(*args.worker)
    if args.rounds < 1 or args.seconds <= 0:
        raise SystemExit("--rounds must be at least 1 and --seconds positive")
    from jaxconv.cpu import platform

    results = {}
    for model in args.models.split(","):
        if model not in MODELS:
            raise SystemExit(f"unknown model {model!r}; known: {', '.join(MODELS)}")
        results[model] = measure(model, args.seconds, args.rounds)
    if args.json:
        print(json.dumps(results))
        return
    print(f"CPU: {platform.cpu_model()} ({os.cpu_count()} cores); images/s of a training step")
    print(
        "| model | jaxconv | jaxconv, XLA convolutions | PyTorch eager | PyTorch channels_last "
        f"| jaxconv / best PyTorch (range over {args.rounds} rounds) "
        "| jaxconv GFLOP/s (of matmul peak) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for model, row in results.items():
        cell = lambda value: "–" if value is None else f"{value:,.1f}"  # noqa: E731
        ratio = "–"
        if row["ratio"] is not None:
            low, high = row["ratio_range"]
            ratio = f"{row['ratio']:.2f} ({low:.2f}-{high:.2f})"
        share = row["jaxconv_gflop_s"] / row["matmul_peak_gflop_s"]
        print(
            f"| {model} | {cell(row['jaxconv_img_s'])} | {cell(row['jaxconv_xla_img_s'])} | "
            f"{cell(row['torch_eager_img_s'])} | {cell(row['torch_channels_last_img_s'])} | "
            f"{ratio} | {row['jaxconv_gflop_s']:.1f} of {row['matmul_peak_gflop_s']:.1f} "
            f"({share:.0%}) |"
        )


if __name__ == "__main__":
    main()
