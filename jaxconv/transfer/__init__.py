"""Transfer learning: pretrained weights in, head swapped, parts frozen.

Three steps, each a function the training loop calls:
1. Read pretrained variables: `from_torchvision(model_name, path_or_state_dict)` converts a
   torchvision state dict (`.pth`, `.safetensors` or an in-memory dict) by name, and
   `from_checkpoint(workdir)` reads a jaxconv run's checkpoint; `load(source, model_name)` picks
   one from a config's `transfer.source` string.
2. `merge(init_variables, pretrained, dont_load=CLASS_LAYERS)` copies them into a freshly
   initialised tree (`load_into_state` into a TrainState). Variables matching a `dont_load`
   pattern keep their initialisation, which is how the head is replaced by one with any number
   of classes, as big_vision does; every other mismatch is reported by name.
3. `freeze(tx, trainable)` gives updates and optimizer state only to the parameters matching a
   `trainable` pattern, and `freeze_model(model, trainable)` stops gradients at the frozen ones
   and runs the model in inference mode, so that frozen batch norms use, and keep, their running
   statistics.

`phases(config, workdir)` turns one config into its runs: the head alone, then optionally every
layer at a lower learning rate. Patterns are regular expressions matched in full against names
like `stage2/block1/conv1/kernel` or `head/bias` (without the collection, `params` or
`batch_stats`).
"""

from jaxconv.transfer.freeze import FrozenModel, freeze, freeze_model, trainable_labels
from jaxconv.transfer.merge import CLASS_LAYERS, TransferError, flatten, load_into_state, merge
from jaxconv.transfer.phases import phases
from jaxconv.transfer.sources import from_checkpoint, load
from jaxconv.transfer.torchvision_weights import (
    TORCHVISION_MODELS,
    expected_shapes,
    from_torchvision,
    torchvision_layers,
)

__all__ = [
    "CLASS_LAYERS",
    "FrozenModel",
    "TORCHVISION_MODELS",
    "TransferError",
    "expected_shapes",
    "flatten",
    "freeze",
    "freeze_model",
    "from_checkpoint",
    "from_torchvision",
    "load",
    "load_into_state",
    "merge",
    "phases",
    "torchvision_layers",
    "trainable_labels",
]
