"""`ops.convolve` against `scipy.signal.convolve`, side by side on one 512 x 512 image.

    python benchmarks/convolve_vs_scipy.py [--mode same] [--repeats 21] [--json]

Both run with `method='auto'` on the same float32 image and kernels (3 x 3, 9 x 9, 31 x 31).
jaxconv is timed after a warm-up call that compiles it; the two are timed in alternation, so a
load that comes and goes on a shared machine hits both alike, and the median of the repeats is
reported. `ratio` is jaxconv's time over scipy's: below 1 means jaxconv is faster. Absolute
times mean little from one machine to another, so the CPU model is printed with them.
"""

import argparse
import json
import os
import statistics
import time

import jax
import numpy as np
import scipy
import scipy.signal

from jaxconv import ops, platform

IMAGE_SHAPE = (512, 512)
KERNEL_SIZES = (3, 9, 31)


def machine() -> str:
    """The CPU (jaxconv.cpu.platform.cpu_model), its cores, and JAX's CPU devices."""
    devices = jax.local_device_count("cpu")
    return f"{platform.cpu_model()}, {os.cpu_count()} cores, {devices} JAX CPU device(s)"


def time_side_by_side(jaxconv_call, scipy_call, repeats: int) -> tuple[float, float]:
    """Median seconds of each call, measured in alternation."""
    jaxconv_times, scipy_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        jaxconv_call()
        jaxconv_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        scipy_call()
        scipy_times.append(time.perf_counter() - start)
    return statistics.median(jaxconv_times), statistics.median(scipy_times)


def measure(kernel_size: int, mode: str, repeats: int) -> dict:
    rng = np.random.default_rng(kernel_size)
    image = rng.standard_normal(IMAGE_SHAPE).astype(np.float32)
    kernel = rng.standard_normal((kernel_size, kernel_size)).astype(np.float32)
    image_on_device, kernel_on_device = jax.device_put(image), jax.device_put(kernel)

    def jaxconv_call():
        return ops.convolve(image_on_device, kernel_on_device, mode=mode).block_until_ready()

    def scipy_call():
        return scipy.signal.convolve(image, kernel, mode=mode)

    ours, theirs = np.asarray(jaxconv_call()), scipy_call()  # warm-up: jaxconv compiles here
    error = float(np.abs(ours - theirs).max() / np.abs(theirs).max())
    jaxconv_seconds, scipy_seconds = time_side_by_side(jaxconv_call, scipy_call, repeats)
    return {
        "kernel": f"{kernel_size}x{kernel_size}",
        "jaxconv_method": ops.choose_method(image, kernel, mode=mode),
        "scipy_method": scipy.signal.choose_conv_method(image, kernel, mode=mode),
        "jaxconv_ms": 1e3 * jaxconv_seconds,
        "scipy_ms": 1e3 * scipy_seconds,
        "ratio": jaxconv_seconds / scipy_seconds,
        "max_relative_difference": error,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="same", choices=("full", "same", "valid"))
    parser.add_argument("--repeats", type=int, default=21, help="timed calls per side")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    options = parser.parse_args()

    rows = [measure(size, options.mode, options.repeats) for size in KERNEL_SIZES]
    report = {
        "cpu": machine(),
        "jax": jax.__version__,
        "scipy": scipy.__version__,
        "image": "x".join(map(str, IMAGE_SHAPE)) + " float32",
        "mode": options.mode,
        "repeats": options.repeats,
        "results": rows,
    }
    if options.json:
        print(json.dumps(report, indent=2))
        return
    print(f"CPU: {report['cpu']}; jax {report['jax']}, scipy {report['scipy']}")
    print(f"image {report['image']}, mode '{options.mode}', median of {options.repeats}")
    print(f"{'kernel':>7} {'jaxconv ms':>11} {'scipy ms':>9} {'ratio':>6}  methods (jaxconv/scipy)")
    for row in rows:
        print(
            f"{row['kernel']:>7} {row['jaxconv_ms']:>11.3f} {row['scipy_ms']:>9.3f} "
            f"{row['ratio']:>6.2f}  {row['jaxconv_method']}/{row['scipy_method']}"
        )
    print("ratio = jaxconv time / scipy time; below 1 means jaxconv is faster")


if __name__ == "__main__":
    main()
