"""Activations against torchvision's models with the same (random) weights.

Skipped unless torch and torchvision import (see DATA.md: torchvision's pure-Python model
definitions work beside the CPU build of torch once its two operators are declared). Weights are
matched by order: torchvision registers its Conv2d, BatchNorm2d and Linear modules in the order
our models call theirs, which `models.summary` lists.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from torch_reference import torch_and_torchvision

from jaxconv import models

torch, torchvision = torch_and_torchvision(allow_module_level=True)
KINDS = {"Conv2d": "Conv", "BatchNorm2d": "BatchNorm", "Linear": "Dense"}


def torch_layers(module):
    return [m for m in module.modules() if type(m).__name__ in KINDS]


def convert(torch_model, model, input_shape):
    """Variables for `model` holding `torch_model`'s weights and batch-norm statistics."""
    layers = models.summary(model, input_shape, file=None).layers
    layers = [layer for layer in layers if layer.kind in KINDS.values()]
    sources = torch_layers(torch_model)
    assert [KINDS[type(m).__name__] for m in sources] == [layer.kind for layer in layers]
    params, batch_stats = {}, {}
    for source, layer in zip(sources, layers, strict=True):
        path = layer.path.split("/")
        numpy = {name: value.detach().numpy() for name, value in source.state_dict().items()}
        if layer.kind == "Conv":
            leaves = {"kernel": numpy["weight"].transpose(2, 3, 1, 0)}
        elif layer.kind == "Dense":
            leaves = {"kernel": numpy["weight"].T}
        else:
            leaves = {"scale": numpy["weight"]}
            insert(batch_stats, path, {"mean": numpy["running_mean"], "var": numpy["running_var"]})
        if "bias" in numpy:
            leaves["bias"] = numpy["bias"]
        insert(params, path, leaves)
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def insert(tree, path, leaves):
    for name in path:
        tree = tree.setdefault(name, {})
    tree.update({name: jnp.asarray(value) for name, value in leaves.items()})


def randomise_statistics(torch_model):
    """Non-trivial running statistics and batch-norm affine parameters, so that a swapped or
    misplaced one shows."""
    generator = torch.Generator().manual_seed(0)
    for module in torch_model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(size, generator=generator) * 0.1)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, size",
    [
        ("resnet18", 224),
        ("resnet18", 97),
        ("resnet50", 65),
        ("alexnet", 100),
        ("alexnet", 63),
        ("vgg11_bn", 64),
    ],
)
def test_same_logits_as_torchvision(name, size):
    torch.manual_seed(0)
    torch_model = getattr(torchvision.models, name)(num_classes=10).eval()
    randomise_statistics(torch_model)
    model = models.create(name, num_classes=10)
    shape = (2, size, size, 3)
    variables = convert(torch_model, model, shape)
    images = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
    logits = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, images)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(np.asarray(logits), expected, atol=2e-5 * scale, rtol=1e-4)


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "vgg16_bn", "resnet18", "resnet50"])
def test_same_parameter_count_as_torchvision(name):
    expected = sum(p.numel() for p in getattr(torchvision.models, name)().parameters())
    variables = jax.eval_shape(
        lambda: models.create(name).init(
            jax.random.key(0), jnp.zeros((1, 224, 224, 3)), train=False
        )
    )
    assert sum(leaf.size for leaf in jax.tree.leaves(variables["params"])) == expected
