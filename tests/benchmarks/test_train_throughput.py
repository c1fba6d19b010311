"""The speed comparison: both sides train the same network (same parameter count in PyTorch as
jaxconv's published-count-checked models), and the figures follow from the timed windows."""

import importlib.util
import pathlib

import pytest

from jaxconv import models
from jaxconv.train import state as state_lib

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
    pytest.importorskip("torch")
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


def test_rows_are_images_over_all_windows_and_ratios_per_round():
    window = lambda steps, seconds: {"steps": steps, "seconds": seconds}  # noqa: E731
    windows = {
        "jaxconv": [window(30, 3.0), window(10, 2.0)],  # 10 and 5 steps/s
        "jaxconv_xla": [window(8, 2.0), window(8, 2.0)],
        "torch_eager": [window(16, 2.0), window(8, 2.0)],  # 8 and 4
        "torch_channels_last": [window(10, 2.0), window(10, 2.0)],  # 5 and 5
    }
    figures = {"jaxconv": {"gflop_per_step": 2.0, "peak_gflop_s": 100.0, "planned": 3}}
    row = throughput.summarise(windows, figures, batch=4)
    assert row["jaxconv_img_s"] == pytest.approx(4 * 40 / 5.0)
    assert row["torch_eager_img_s"] == pytest.approx(4 * 24 / 4.0)
    assert row["torch_channels_last_img_s"] == pytest.approx(4 * 20 / 4.0)
    assert row["torch_img_s"] == row["torch_eager_img_s"]  # the faster over all windows
    assert row["ratio"] == pytest.approx(32 / 24)
    # Round 1: 10 steps/s against eager's 8; round 2: 5 against channels_last's 5.
    assert row["ratio_range"] == pytest.approx([1.0, 1.25])
    assert row["jaxconv_gflop_s"] == pytest.approx(8.0 * 2.0)
    assert row["planned_convolutions"] == 3


def test_rows_without_pytorch_have_no_ratio():
    windows = {name: [{"steps": 5, "seconds": 1.0}] for name in ("jaxconv", "jaxconv_xla")}
    figures = {"jaxconv": {"gflop_per_step": 1.0, "peak_gflop_s": 10.0, "planned": 0}}
    row = throughput.summarise(windows, figures, batch=2)
    assert row["torch_img_s"] is None and row["ratio"] is None and row["ratio_range"] is None
    assert row["jaxconv_img_s"] == pytest.approx(10.0)
