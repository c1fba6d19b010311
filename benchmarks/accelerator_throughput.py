"""ResNet-50 training speed on one accelerator: images/s in bfloat16, synthetic ImageNet batches.

    python benchmarks/accelerator_throughput.py [--model resnet50] [--size 224] [--batch 256]
                                                [--dtype bfloat16] [--seconds 30] [--json]

The GPU target of the speed work: ResNet-50 at 224x224, computing in bfloat16 (parameters and
optimizer state in float32), at 3,000 images/s or more on one H100 (NVIDIA's PyTorch reference
is 2,470 images/s on an A100 with automatic mixed precision). This times jaxconv's training
step as a run uses it (benchmarks/train_throughput.py's `jaxconv_step`: jaxconv.train.step
under jit on the first device, the batch already there, the old state donated; SGD with
momentum, cross-entropy over 1,000 classes) for `--seconds` after 3 warm-up steps, and prints
images/s with the device it ran on and the model's FLOPs per second (3x the forward pass's).
It runs on a CPU too, with the convolutions planned as in a run, but slowly: `--size 64
--batch 8 --seconds 5` there checks that it works.
"""

import argparse
import json
import os

from jaxconv.cpu import platform

platform.configure_xla(os.environ)  # before JAX starts: the flags a jaxconv run uses on CPU

from train_throughput import jaxconv_step, timed  # noqa: E402

DTYPES = ("bfloat16", "float16", "float32")


def measure(
    model_name: str, size: int, batch: int, dtype: str, seconds: float, planned: bool = True
) -> dict:
    """One row: images/s (and TFLOP/s) of `seconds` of training steps on the first device."""
    import jax
    import jax.numpy as jnp

    from jaxconv import models

    classes = 1000
    model = models.create(model_name, num_classes=classes, dtype=jnp.dtype(dtype))
    shape = (batch, size, size, 3)
    one_step, _ = jaxconv_step(model, shape, classes, "classification", planned)
    steps, spent, _ = timed(one_step, seconds)
    device = jax.devices()[0]
    images_per_s = batch * steps / spent
    return {
        "model": model_name,
        "device": platform.cpu_model() if device.platform == "cpu" else device.device_kind,
        "dtype": dtype,
        "size": size,
        "batch": batch,
        "steps": steps,
        "img_s": images_per_s,
        "tflop_s": images_per_s * 3 * models.summary(model, shape[1:]).flops / 1e12,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dtype", default="bfloat16", choices=DTYPES)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.batch < 1 or args.size < 32 or args.seconds <= 0:
        raise SystemExit("--batch must be at least 1, --size at least 32, --seconds positive")
    row = measure(args.model, args.size, args.batch, args.dtype, args.seconds)
    if args.json:
        print(json.dumps(row))
        return
    print(
        f"{row['device']}: {row['model']} {row['size']}x{row['size']}, batch {row['batch']}, "
        f"{row['dtype']}: {row['img_s']:,.0f} images/s ({row['tflop_s']:.2f} TFLOP/s, "
        f"{row['steps']} steps)"
    )


if __name__ == "__main__":
    main()
