"""Runs a model that `launch.py export --format stablehlo` wrote, with jax and numpy alone.

from load import load
model = load("my_model")          # the export folder
outputs = model(images)           # (N, H, W, C) pixels, 0-255: uint8 or float
model.card["class_names"]         # and the task, input shape, normalisation, ...

python load.py my_model images.npy   # prints the outputs' shape and the first row
"""

import json
import pathlib
import sys

import jax
import numpy as np


def load(folder):
    folder = pathlib.Path(folder)
    card = json.loads((folder / "model.json").read_text())
    exported = jax.export.deserialize(bytearray((folder / "model.stablehlo").read_bytes()))

    def model(images):
        return np.asarray(exported.call(np.asarray(images, np.float32)))

    model.card = card
    return model


if __name__ == "__main__":
    outputs = load(sys.argv[1])(np.load(sys.argv[2]))
    print(outputs.shape, outputs.reshape(len(outputs), -1)[0][:10])
