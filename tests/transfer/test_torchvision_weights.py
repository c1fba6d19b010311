"""Conversion of torchvision state dicts by name.

The reference is independent of jaxconv: state dicts are named and shaped as torchvision's
models name and shape them, and a numpy forward pass in NCHW (float64) written from torchvision's
model definitions gives the logits the converted jaxconv model must reproduce. Where torch and
torchvision import (see DATA.md), the conversion is also checked against torchvision's own models.
"""

import sys

import jax
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from torch_reference import torch_and_torchvision

from jaxconv import models, transfer

RESNET_STAGES = {
    18: ((2, 2, 2, 2), False),
    34: ((3, 4, 6, 3), False),
    50: ((3, 4, 6, 3), True),
    101: ((3, 4, 23, 3), True),
    152: ((3, 8, 36, 3), True),
}
VGG_CONVOLUTIONS = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}


# --- torchvision's names and shapes --------------------------------------------------------------


def conv_shapes(name, out_channels, in_channels, kernel_size, bias):
    shapes = {f"{name}.weight": (out_channels, in_channels, kernel_size, kernel_size)}
    return shapes | ({f"{name}.bias": (out_channels,)} if bias else {})


def norm_shapes(name, channels):
    leaves = ("weight", "bias", "running_mean", "running_var")
    return {f"{name}.{leaf}": (channels,) for leaf in leaves} | {f"{name}.num_batches_tracked": ()}


def linear_shapes(name, out_features, in_features):
    return {f"{name}.weight": (out_features, in_features), f"{name}.bias": (out_features,)}


def alexnet_shapes(num_classes):
    return (
        conv_shapes("features.0", 64, 3, 11, True)
        | conv_shapes("features.3", 192, 64, 5, True)
        | conv_shapes("features.6", 384, 192, 3, True)
        | conv_shapes("features.8", 256, 384, 3, True)
        | conv_shapes("features.10", 256, 256, 3, True)
        | linear_shapes("classifier.1", 4096, 256 * 6 * 6)
        | linear_shapes("classifier.4", 4096, 4096)
        | linear_shapes("classifier.6", num_classes, 4096)
    )


def vgg_shapes(depth, batch_norm, num_classes):
    shapes, index, channels = {}, 0, 3
    for size, width in zip(VGG_CONVOLUTIONS[depth], (64, 128, 256, 512, 512)):
        for _ in range(size):
            shapes |= conv_shapes(f"features.{index}", width, channels, 3, True)
            if batch_norm:
                shapes |= norm_shapes(f"features.{index + 1}", width)
            index, channels = index + (3 if batch_norm else 2), width
        index += 1  # MaxPool2d
    return (
        shapes
        | linear_shapes("classifier.0", 4096, 512 * 7 * 7)
        | linear_shapes("classifier.3", 4096, 4096)
        | linear_shapes("classifier.6", num_classes, 4096)
    )


def resnet_shapes(depth, num_classes):
    stage_sizes, bottleneck = RESNET_STAGES[depth]
    expansion = 4 if bottleneck else 1
    shapes = conv_shapes("conv1", 64, 3, 7, False) | norm_shapes("bn1", 64)
    channels = 64
    for stage, (size, width) in enumerate(zip(stage_sizes, (64, 128, 256, 512)), start=1):
        for block in range(size):
            prefix = f"layer{stage}.{block}"
            if bottleneck:
                convs = [(width, channels, 1), (width, width, 3), (width * expansion, width, 1)]
            else:
                convs = [(width, channels, 3), (width, width, 3)]
            for number, (out_channels, in_channels, kernel_size) in enumerate(convs, start=1):
                shapes |= conv_shapes(
                    f"{prefix}.conv{number}", out_channels, in_channels, kernel_size, False
                )
                shapes |= norm_shapes(f"{prefix}.bn{number}", out_channels)
            if block == 0 and (stage > 1 or bottleneck):
                shapes |= conv_shapes(
                    f"{prefix}.downsample.0", width * expansion, channels, 1, False
                )
                shapes |= norm_shapes(f"{prefix}.downsample.1", width * expansion)
            channels = width * expansion
    return shapes | linear_shapes("fc", num_classes, 512 * expansion)


def torchvision_shapes(name, num_classes):
    if name == "alexnet":
        return alexnet_shapes(num_classes)
    if name.startswith("vgg"):
        return vgg_shapes(int(name[3:5]), name.endswith("_bn"), num_classes)
    return resnet_shapes(int(name[6:]), num_classes)


def random_state_dict(shapes, seed=0):
    """Weights scaled by fan-in so activations stay of order one, and batch-norm statistics and
    affine parameters far enough from 0 and 1 that a swapped or misplaced one shows."""
    rng = np.random.default_rng(seed)
    state_dict = {}
    for name, shape in shapes.items():
        leaf = name.rpartition(".")[2]
        if leaf == "num_batches_tracked":
            value = np.array(100, np.int64)
        elif leaf == "weight" and len(shape) > 1:
            fan_in = np.prod(shape[1:])
            value = rng.standard_normal(shape, np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        elif leaf in ("weight", "running_var"):
            value = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            value = (0.1 * rng.standard_normal(shape)).astype(np.float32)
        state_dict[name] = value
    return state_dict


# --- numpy reference forward pass (NCHW, float64) ------------------------------------------------


def conv2d(x, state_dict, name, stride=1, padding=0):
    weight = state_dict[f"{name}.weight"].astype(np.float64)
    kernel_size = weight.shape[2]
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = sliding_window_view(x, (kernel_size, kernel_size), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride]  # (N, C, H', W', kh, kw)
    y = np.tensordot(windows, weight, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    bias = state_dict.get(f"{name}.bias")
    return y if bias is None else y + bias[:, None, None]


def batch_norm(x, state_dict, name):
    get = lambda leaf: state_dict[f"{name}.{leaf}"].astype(np.float64)[:, None, None]
    return (x - get("running_mean")) / np.sqrt(get("running_var") + 1e-5) * get("weight") + get(
        "bias"
    )


def max_pool(x, kernel_size, stride, padding=0):
    pad = ((0, 0), (0, 0), (padding, padding), (padding, padding))
    x = np.pad(x, pad, constant_values=-np.inf)
    windows = sliding_window_view(x, (kernel_size, kernel_size), axis=(2, 3))
    return windows[:, :, ::stride, ::stride].max(axis=(4, 5))


def adaptive_avg_pool(x, size):
    """PyTorch's bins: cell i of n over length L averages [floor(i L / n), ceil((i + 1) L / n))."""
    for axis in (2, 3):
        length = x.shape[axis]
        cells = [
            np.take(x, range(i * length // size, -(-(i + 1) * length // size)), axis=axis).mean(
                axis=axis, keepdims=True
            )
            for i in range(size)
        ]
        x = np.concatenate(cells, axis=axis)
    return x


def linear(x, state_dict, name):
    return x @ state_dict[f"{name}.weight"].T.astype(np.float64) + state_dict[f"{name}.bias"]


def relu(x):
    return np.maximum(x, 0.0)


def alexnet_forward(state_dict, x):
    """torchvision's AlexNet in inference mode."""
    x = max_pool(relu(conv2d(x, state_dict, "features.0", stride=4, padding=2)), 3, 2)
    x = max_pool(relu(conv2d(x, state_dict, "features.3", padding=2)), 3, 2)
    x = relu(conv2d(x, state_dict, "features.6", padding=1))
    x = relu(conv2d(x, state_dict, "features.8", padding=1))
    x = max_pool(relu(conv2d(x, state_dict, "features.10", padding=1)), 3, 2)
    x = adaptive_avg_pool(x, 6).reshape(x.shape[0], -1)  # NCHW flatten: channel-major
    x = relu(linear(x, state_dict, "classifier.1"))
    x = relu(linear(x, state_dict, "classifier.4"))
    return linear(x, state_dict, "classifier.6")


def resnet18_forward(state_dict, x):
    """torchvision's ResNet-18 in inference mode."""
    x = relu(batch_norm(conv2d(x, state_dict, "conv1", 2, 3), state_dict, "bn1"))
    x = max_pool(x, 3, 2, padding=1)
    for stage in range(1, 5):
        for block in range(2):
            prefix = f"layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            y = relu(
                batch_norm(
                    conv2d(x, state_dict, f"{prefix}.conv1", stride, 1), state_dict, f"{prefix}.bn1"
                )
            )
            y = batch_norm(
                conv2d(y, state_dict, f"{prefix}.conv2", 1, 1), state_dict, f"{prefix}.bn2"
            )
            if f"{prefix}.downsample.0.weight" in state_dict:
                x = conv2d(x, state_dict, f"{prefix}.downsample.0", stride)
                x = batch_norm(x, state_dict, f"{prefix}.downsample.1")
            x = relu(x + y)
    return linear(x.mean(axis=(2, 3)), state_dict, "fc")


REFERENCES = {
    "alexnet": (alexnet_forward, (2, 200, 232)),
    "resnet18": (resnet18_forward, (2, 64, 48)),
}


def jaxconv_logits(name, variables, images_nchw):
    model = models.create(name, num_classes=variables["params"]["head"]["bias"].shape[0])
    images = images_nchw.transpose(0, 2, 3, 1).astype(np.float32)
    return np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, images))


def assert_close(logits, expected):
    """Within 1e-4 of the reference, relative to the largest logit."""
    scale = np.abs(expected).max()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4 * scale)


# --- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_same_logits_as_numpy_reference(name):
    forward, (batch, height, width) = REFERENCES[name]
    state_dict = random_state_dict(torchvision_shapes(name, num_classes=7))
    images = np.random.default_rng(1).standard_normal((batch, 3, height, width))
    variables = transfer.from_torchvision(name, state_dict)
    assert_close(jaxconv_logits(name, variables, images), forward(state_dict, images))


def zero_state_dict(shapes):
    """Zero arrays that take no memory: enough to check names and shapes."""
    return {name: np.broadcast_to(np.float32(0), shape) for name, shape in shapes.items()}


@pytest.mark.parametrize("name", transfer.TORCHVISION_MODELS)
def test_every_model_converts_with_its_shapes(name):
    variables = transfer.from_torchvision(name, zero_state_dict(torchvision_shapes(name, 5)))
    expected = transfer.expected_shapes(name, num_classes=5)
    shapes = {name: leaf.shape for name, leaf in transfer.flatten(variables).items()}
    assert shapes == expected


def test_mismatches_are_listed_by_name():
    shapes = resnet_shapes(18, 10)
    del shapes["layer1.0.bn1.running_var"]
    shapes["layer5.0.conv1.weight"] = (8, 8, 3, 3)
    shapes["layer1.1.conv2.weight"] = (64, 64, 1, 1)
    with pytest.raises(transfer.TransferError) as error:
        transfer.from_torchvision("resnet18", zero_state_dict(shapes))
    message = str(error.value)
    assert "unexpected torchvision key layer5.0.conv1.weight" in message
    assert "missing batch_stats/stage1/block1/norm1/var" in message
    assert "layer1.0.bn1.running_var" in message
    assert (
        "shape of params/stage1/block2/conv2/kernel: torchvision layer1.1.conv2.weight" in message
    )


def test_unknown_model_lists_supported_ones():
    with pytest.raises(transfer.TransferError, match="supported: alexnet, vgg11"):
        transfer.from_torchvision("lenet5", {})


def test_safetensors_file(tmp_path):
    safetensors = pytest.importorskip("safetensors.numpy")
    state_dict = random_state_dict(resnet_shapes(18, 3))
    path = tmp_path / "resnet18.safetensors"
    safetensors.save_file(state_dict, path)
    from_file = transfer.from_torchvision("resnet18", path)
    from_memory = transfer.from_torchvision("resnet18", state_dict)
    jax.tree.map(np.testing.assert_array_equal, from_file, from_memory)


def test_unknown_file_kind(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_bytes(b"")
    with pytest.raises(transfer.TransferError, match=r"\.pth, \.pt\) or a \.safetensors"):
        transfer.from_torchvision("alexnet", path)


@pytest.mark.parametrize(
    "module, suffix, hint",
    [
        ("torch", ".pth", "pip install torch==2.13.0"),
        ("safetensors", ".safetensors", "pip install safetensors"),
    ],
)
def test_missing_optional_package_names_the_install(tmp_path, monkeypatch, module, suffix, hint):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    monkeypatch.delitem(sys.modules, f"{module}.numpy", raising=False)
    path = tmp_path / f"weights{suffix}"
    path.write_bytes(b"")
    with pytest.raises(ImportError, match=hint):
        transfer.from_torchvision("alexnet", path)


# --- against torchvision itself, where it imports -------------------------------------------------


@pytest.mark.parametrize("name", transfer.TORCHVISION_MODELS)
def test_torchvision_names_and_shapes(name):
    torch, torchvision = torch_and_torchvision()
    with torch.device("meta"):  # shapes without memory or initialisation
        torch_model = getattr(torchvision.models, name)(num_classes=5)
    shapes = {key: tuple(value.shape) for key, value in torch_model.state_dict().items()}
    assert shapes == torchvision_shapes(name, 5)
    transfer.from_torchvision(name, zero_state_dict(shapes))


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_same_logits_as_torchvision(name, tmp_path):
    torch, torchvision = torch_and_torchvision()
    torch.manual_seed(0)
    torch_model = getattr(torchvision.models, name)(num_classes=7).eval()
    state_dict = random_state_dict(torchvision_shapes(name, 7))
    torch_model.load_state_dict({key: torch.from_numpy(value) for key, value in state_dict.items()})
    path = tmp_path / f"{name}.pth"
    torch.save(torch_model.state_dict(), path)
    _, (batch, height, width) = REFERENCES[name]
    images = np.random.default_rng(1).standard_normal((batch, 3, height, width))
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(images.astype(np.float32))).numpy()
    assert_close(jaxconv_logits(name, transfer.from_torchvision(name, path), images), expected)
