"""Each convolution formulation of a few layers, timed side by side on this machine.

    python benchmarks/conv_formulations.py

For each layer below, every formulation that jaxconv.cpu.fast_conv can use for each product
(forward pass, input gradient, kernel gradient) is timed alone in milliseconds, best of a few
runs, as the planner times it (jaxconv.cpu.planning.time_formulation), with the XLA flags
a jaxconv run sets. A dash: the formulation cannot compute that product of that layer (or, for
oneDNN's, neither jaxlib's call nor oneDNN's library is usable here for it).
"""

import os

from jaxconv.cpu import platform

platform.configure_xla(os.environ)  # before JAX starts: the flags a jaxconv run uses

from jaxconv.cpu import fast_conv, planning  # noqa: E402

SAME_3X3 = ((1, 1), (1, 1))
ONE = (1, 1)
# name: (input NHWC, kernel HWIO, strides, padding)
LAYERS = {
    "ResNet-18 64 -> 64, 3x3, 64x32x32": ((64, 32, 32, 64), (3, 3, 64, 64), ONE, SAME_3X3),
    "ResNet-18 64 -> 128, 3x3 stride 2, 64x32x32": (
        (64, 32, 32, 64),
        (3, 3, 64, 128),
        (2, 2),
        SAME_3X3,
    ),
    "ResNet-18 CIFAR stem 3 -> 64, 3x3, 64x32x32": ((64, 32, 32, 3), (3, 3, 3, 64), ONE, SAME_3X3),
    # Many channels, small images: where Winograd's fewer multiplications pay for its transforms.
    "ResNet-18 256 -> 256, 3x3, 64x8x8": ((64, 8, 8, 256), (3, 3, 256, 256), ONE, SAME_3X3),
    "ResNet-18 512 -> 512, 3x3, 64x4x4": ((64, 4, 4, 512), (3, 3, 512, 512), ONE, SAME_3X3),
    "LeNet-5 1 -> 6, 5x5, 128x28x28": ((128, 28, 28, 1), (5, 5, 1, 6), ONE, ((2, 2), (2, 2))),
    "LeNet-5 6 -> 16, 5x5, 128x14x14": ((128, 14, 14, 6), (5, 5, 6, 16), ONE, ((0, 0), (0, 0))),
    "U-Net 64 -> 64, 3x3, 16x64x64": ((16, 64, 64, 64), (3, 3, 64, 64), ONE, SAME_3X3),
    "U-Net 1024 -> 1024, 3x3, 16x4x4": ((16, 4, 4, 1024), (3, 3, 1024, 1024), ONE, SAME_3X3),
}


def main() -> None:
    print(f"CPU: {platform.cpu_model()} ({os.cpu_count()} cores); milliseconds, best of a few")
    others = {name for names in fast_conv.FORMULATIONS.values() for name in names} - {"xla"}
    names = ["xla", *sorted(others)]
    print("| layer | product | " + " | ".join(names) + " |")
    print("|---|---|" + "---:|" * len(names))
    for layer, (input_shape, kernel_shape, strides, padding) in LAYERS.items():
        geometry = fast_conv.Geometry(input_shape, kernel_shape, strides, padding, (1, 1))
        for role, options in fast_conv.candidates(geometry).items():
            cells = []
            for name in names:
                if name in options:
                    seconds = planning.time_formulation(role, name, geometry, "float32")
                    cells.append(f"{seconds * 1e3:.2f}")
                else:
                    cells.append("–")
            print(f"| {layer} | {role} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
