"""The speed comparison is fair only if both sides train the same network: same parameter
count in PyTorch as jaxconv's published-count-checked models."""

import importlib.util
import pathlib

import pytest

from jaxconv import models
from jaxconv.train import state as state_lib

pytest.importorskip("torch")
ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    "throughput", ROOT / "benchmarks" / "train_throughput.py"
)
throughput = importlib.util.module_from_spec(spec)
spec.loader.exec_module(throughput)

JAXCONV = {
    "lenet5": lambda classes: models.create("lenet5", num_classes=classes),
    "resnet18": lambda classes: models.create("resnet18", num_classes=classes, stem="cifar"),
    "unet": lambda classes: models.create("unet_same", num_classes=classes, depth=4, width=64),
}


@pytest.mark.parametrize("name", sorted(throughput.MODELS))
def test_pytorch_twin_has_jaxconvs_parameter_count(name):
    import jax

    size, channels, _, classes = throughput.MODELS[name]
    model = JAXCONV[name](classes)
    shapes = jax.eval_shape(
        lambda: model.init(
            jax.random.PRNGKey(0), jax.numpy.zeros((1, size, size, channels)), train=False
        )
    )
    twin = throughput.torch_model(name)
    trainable = sum(p.numel() for p in twin.parameters())
    assert trainable == state_lib.count_parameters(shapes["params"])
