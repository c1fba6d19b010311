"""torchvision state dicts converted by name into jaxconv variables.

Convolution kernels OIHW -> HWIO, linear weights (out, in) -> (in, out), batch norm weight, bias,
running_mean and running_var -> scale, bias, mean and var. jaxconv's AlexNet and VGG flatten their
pooled map in PyTorch's channel-major order (`layers.flatten_channels_first`), so their first
fully connected layer converts with the same plain transpose as the others. PyTorch's
`num_batches_tracked` counters have no Flax counterpart (Flax's batch norm uses a fixed momentum)
and are dropped. torch is needed only to read `.pth` files; `.safetensors` files need only the
`safetensors` package.
"""

import pathlib
from collections.abc import Mapping

import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from jaxconv import models
from jaxconv.errors import DependencyError, MissingFileError
from jaxconv.models import alexnet, resnet, vgg
from jaxconv.transfer.merge import TransferError, flatten

IGNORED_TORCH_LEAVES = ("num_batches_tracked",)

# Per layer kind: torchvision leaf -> (jaxconv collection, jaxconv leaf, layout conversion).
LEAVES = {
    "conv": {
        "weight": ("params", "kernel", lambda w: w.transpose(2, 3, 1, 0)),  # OIHW -> HWIO
        "bias": ("params", "bias", lambda b: b),
    },
    "dense": {
        "weight": ("params", "kernel", lambda w: w.T),  # (out, in) -> (in, out)
        "bias": ("params", "bias", lambda b: b),
    },
    "norm": {
        "weight": ("params", "scale", lambda w: w),
        "bias": ("params", "bias", lambda b: b),
        "running_mean": ("batch_stats", "mean", lambda m: m),
        "running_var": ("batch_stats", "var", lambda v: v),
    },
}


def alexnet_layers() -> dict[str, tuple[str, str]]:
    """torchvision module name -> (jaxconv layer path, kind) for AlexNet.

    torchvision's `features` holds Conv2d, ReLU and, after conv1, conv2 and conv5, MaxPool2d;
    its `classifier` is Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear.
    """
    layers, index = {}, 0
    for number, (*_, pooled) in enumerate(alexnet.CONVOLUTIONS, start=1):
        layers[f"features.{index}"] = (f"conv{number}/conv", "conv")
        index += 3 if pooled else 2
    for index, name in ((1, "fc1"), (4, "fc2"), (6, "head")):
        layers[f"classifier.{index}"] = (name, "dense")
    return layers


def vgg_layers(depth: int, batch_norm: bool) -> dict[str, tuple[str, str]]:
    """torchvision module name -> (jaxconv layer path, kind) for VGG-`depth`.

    torchvision's `features` holds Conv2d, (BatchNorm2d,) ReLU for each convolution and a
    MaxPool2d after each stage; its `classifier` is Linear, ReLU, Dropout, twice, then Linear.
    """
    layers, index = {}, 0
    for stage, size in enumerate(vgg.STAGE_SIZES[depth], start=1):
        for number in range(1, size + 1):
            path = f"stage{stage}/conv{number}"
            layers[f"features.{index}"] = (f"{path}/conv", "conv")
            if batch_norm:
                layers[f"features.{index + 1}"] = (f"{path}/norm", "norm")
            index += 3 if batch_norm else 2
        index += 1  # MaxPool2d
    for index, name in ((0, "fc1"), (3, "fc2"), (6, "head")):
        layers[f"classifier.{index}"] = (name, "dense")
    return layers


def resnet_layers(depth: int) -> dict[str, tuple[str, str]]:
    """torchvision module name -> (jaxconv layer path, kind) for ResNet-`depth`.

    Every block is given a possible `downsample` (torchvision's projection shortcut); blocks
    without one simply have no such keys.
    """
    stage_sizes, block_cls = resnet.IMAGENET_STAGE_SIZES[depth]
    num_convs = 3 if block_cls is resnet.Bottleneck else 2
    layers = {"conv1": ("stem/conv", "conv"), "bn1": ("stem/norm", "norm"), "fc": ("head", "dense")}
    for stage, size in enumerate(stage_sizes, start=1):
        for block in range(size):
            torch_prefix, path = f"layer{stage}.{block}", f"stage{stage}/block{block + 1}"
            for number in range(1, num_convs + 1):
                layers[f"{torch_prefix}.conv{number}"] = (f"{path}/conv{number}", "conv")
                layers[f"{torch_prefix}.bn{number}"] = (f"{path}/norm{number}", "norm")
            layers[f"{torch_prefix}.downsample.0"] = (f"{path}/projection_conv", "conv")
            layers[f"{torch_prefix}.downsample.1"] = (f"{path}/projection_norm", "norm")
    return layers


def torchvision_layers(model_name: str) -> dict[str, tuple[str, str]]:
    """torchvision module name -> (jaxconv layer path, kind) for a supported model."""
    if model_name == "alexnet":
        return alexnet_layers()
    for depth in vgg.STAGE_SIZES:
        if model_name in (f"vgg{depth}", f"vgg{depth}_bn"):
            return vgg_layers(depth, batch_norm=model_name.endswith("_bn"))
    for depth in resnet.IMAGENET_STAGE_SIZES:
        if model_name == f"resnet{depth}":
            return resnet_layers(depth)
    raise TransferError(
        f"no torchvision conversion for model {model_name!r}; supported: "
        f"{', '.join(TORCHVISION_MODELS)}"
    )


TORCHVISION_MODELS = (
    "alexnet",
    *(f"vgg{depth}{suffix}" for suffix in ("", "_bn") for depth in vgg.STAGE_SIZES),
    *(f"resnet{depth}" for depth in resnet.IMAGENET_STAGE_SIZES),
)


# --- reading and converting torchvision state dicts ----------------------------------------------


def read_state_dict(path_or_state_dict) -> dict[str, np.ndarray]:
    """A torchvision state dict as {name: numpy array} from a `.pth` or `.safetensors` file or
    a mapping of numpy arrays or torch tensors."""
    if isinstance(path_or_state_dict, Mapping):
        return {name: to_numpy(value) for name, value in path_or_state_dict.items()}
    path = pathlib.Path(path_or_state_dict)
    if not path.is_file():
        raise MissingFileError(f"no pretrained weights file at {path}")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    if path.suffix in (".pth", ".pt"):
        return read_torch_file(path)
    raise TransferError(
        f"cannot read weights from {path}: use a PyTorch state dict (.pth, .pt) or a "
        ".safetensors file"
    )


def read_safetensors(path: pathlib.Path) -> dict[str, np.ndarray]:
    try:
        import safetensors.numpy
    except ImportError:
        raise DependencyError(
            f"reading {path.name} needs the safetensors package: pip install safetensors"
        ) from None
    return safetensors.numpy.load_file(path)


def read_torch_file(path: pathlib.Path) -> dict[str, np.ndarray]:
    # torch is optional: only `.pth` files need it.
    try:
        import torch
    except ImportError:
        raise DependencyError(
            f"reading {path.name} needs PyTorch: pip install torch==2.13.0 (or save the weights "
            "as .safetensors, which needs only the safetensors package)"
        ) from None
    # weights_only refuses pickled code: a weights file must not be able to run anything.
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, Mapping) or not all(
        isinstance(value, torch.Tensor) for value in state_dict.values()
    ):
        raise TransferError(
            f"{path} is not a state dict of tensors; save one with "
            "torch.save(model.state_dict(), path)"
        )
    return read_state_dict(state_dict)


def to_numpy(value) -> np.ndarray:
    """A numpy array or torch tensor as a numpy array; torch's half-precision floats are widened
    to float32 (numpy has no bfloat16)."""
    if hasattr(value, "detach"):  # a torch tensor, recognised without importing torch
        value = value.detach().cpu()
        value = value.float() if value.is_floating_point() else value
        return value.numpy()
    return np.asarray(value)


def from_torchvision(model_name: str, path_or_state_dict) -> dict:
    """jaxconv variables `{'params': ..., 'batch_stats': ...}` (numpy float32 leaves) converted
    by name from torchvision's state dict for `model_name`.

    The model's number of classes is read from the state dict's last layer. Every torchvision
    key must be used and every jaxconv variable filled with the right shape, or a TransferError
    lists each missing, unexpected and mis-shaped name.
    """
    layers = torchvision_layers(model_name)
    state_dict = read_state_dict(path_or_state_dict)
    converted, sources, unexpected = convert_leaves(state_dict, layers)
    head_layer = next(name for name, (path, _) in layers.items() if path == "head")
    num_classes = state_dict.get(f"{head_layer}.weight", np.zeros((1000, 0))).shape[0]
    expected = expected_shapes(model_name, num_classes)
    problems = [f"unexpected torchvision key {name}" for name in unexpected]
    problems += compare_shapes(converted, expected, sources, torch_names(layers))
    if problems:
        raise TransferError(
            f"the state dict does not fit jaxconv's {model_name}:\n  " + "\n  ".join(problems)
        )
    return flax.traverse_util.unflatten_dict(converted, sep="/")


def convert_leaves(
    state_dict: Mapping[str, np.ndarray], layers: Mapping[str, tuple[str, str]]
) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    """Flat {'params/stem/conv/kernel': array}, the torchvision name of each, and the
    torchvision names that map to nothing."""
    converted, sources, unexpected = {}, {}, []
    for torch_name, value in state_dict.items():
        module, _, leaf = torch_name.rpartition(".")
        if leaf in IGNORED_TORCH_LEAVES:
            continue
        if module not in layers or leaf not in LEAVES[layers[module][1]]:
            unexpected.append(torch_name)
            continue
        path, kind = layers[module]
        collection, name, layout = LEAVES[kind][leaf]
        value = np.asarray(value)
        # jaxconv keeps float32 parameters whatever precision the file was saved in.
        value = value.astype(np.float32, copy=False) if value.dtype.kind == "f" else value
        converted[f"{collection}/{path}/{name}"] = layout(value)
        sources[f"{collection}/{path}/{name}"] = torch_name
    return converted, sources, unexpected


def torch_names(layers: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    """jaxconv flat name -> the torchvision key it comes from, for every mapped leaf."""
    names = {}
    for module, (path, kind) in layers.items():
        for leaf, (collection, name, _) in LEAVES[kind].items():
            names[f"{collection}/{path}/{name}"] = f"{module}.{leaf}"
    return names


def expected_shapes(model_name: str, num_classes: int) -> dict[str, tuple[int, ...]]:
    """Flat {name: shape} of the variables `models.create(model_name).init` makes (traced, not
    computed), at torchvision's 224x224 RGB input."""
    model = models.create(model_name, num_classes=num_classes)
    variables = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3)), train=False)
    )
    return {name: leaf.shape for name, leaf in flatten(variables).items()}


def compare_shapes(converted, expected, sources, torch_name_of) -> list[str]:
    """One line per jaxconv variable missing from, or unexpected in, or mis-shaped in
    `converted`, naming the torchvision key too."""
    problems = []
    for name, shape in expected.items():
        if name not in converted:
            source = torch_name_of.get(name)
            problems.append(
                f"missing {name} {shape}" + (f" (torchvision {source})" if source else "")
            )
        elif converted[name].shape != shape:
            problems.append(
                f"shape of {name}: torchvision {sources[name]} gives {converted[name].shape}, "
                f"jaxconv expects {shape}"
            )
    problems += [
        f"unexpected {name} (from torchvision {sources[name]})"
        for name in converted
        if name not in expected
    ]
    return problems
