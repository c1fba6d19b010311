"""The registry: names, unknown names and options, None overrides, and the summary table."""

import io

import jax.numpy as jnp
import pytest

from jaxconv import models

REQUIRED_NAMES = [
    "lenet5",
    "mlp",
    "alexnet",
    *[f"vgg{depth}{suffix}" for depth in (11, 13, 16, 19) for suffix in ("", "_bn")],
    *[f"{kind}{depth}" for kind in ("resnet", "plain") for depth in (18, 34, 50, 101, 152)],
    *[f"{kind}{depth}" for kind in ("resnet", "plain") for depth in (20, 32, 44, 56, 110)],
    "unet",
    "unet_same",
    "dncnn",
]


def test_every_required_name_is_registered():
    assert set(REQUIRED_NAMES) <= set(models.names())


def test_unknown_name_lists_known_names():
    with pytest.raises(KeyError) as error:
        models.create("resnet19", num_classes=10)
    message = str(error.value)
    assert "resnet19" in message and "resnet18" in message and "lenet5" in message
    assert isinstance(error.value, ValueError)


def test_unknown_option_names_it_and_the_valid_ones():
    with pytest.raises(ValueError, match="num_clases") as error:
        models.create("lenet5", num_clases=10)
    assert "num_classes" in str(error.value) and "conv1_padding" in str(error.value)


def test_none_overrides_mean_model_default():
    model = models.create("resnet20", num_classes=None, stage_widths=None)
    assert model.num_classes == 10 and tuple(model.stage_widths) == (16, 32, 64)


def test_overrides_reach_the_module():
    model = models.create("unet_same", num_classes=3, depth=2, upsampling="bilinear")
    assert (model.num_classes, model.depth, model.upsampling) == (3, 2, "bilinear")


def test_list_overrides_become_tuples_so_the_module_hashes():
    model = models.create("mlp", hidden_sizes=[64, 32])
    assert model.hidden_sizes == (64, 32) and isinstance(hash(model), int)


def test_options_show_the_variant_presets():
    options = models.options("lenet5_1998")
    assert options["activation"] == "tanh" and options["pooling"] == "avg"
    assert "dtype" in options and "parent" not in options


def test_summary_table_has_a_row_per_layer_and_totals():
    out = io.StringIO()
    result = models.summary(models.create("lenet5", num_classes=10), (28, 28, 1), file=out)
    table = out.getvalue()
    assert [layer.path for layer in result.layers] == [
        "conv1/conv",
        "conv2/conv",
        "fc1",
        "fc2",
        "head",
    ]
    assert "61,706" in table and "(1, 10, 10, 16)" in table
    # By hand: conv1 is 28*28*6 outputs of 5*5 multiply-adds; conv2 10*10*16 of 5*5*6.
    assert result.layers[0].flops == 2 * 28 * 28 * 6 * 25
    assert result.layers[1].flops == 2 * 10 * 10 * 16 * 150
    assert result.flops == 2 * (28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 840)


def test_summary_counts_batch_statistics_apart():
    result = models.summary(models.create("resnet20"), (32, 32, 3), dtype=jnp.float32, file=None)
    # 19 batch norms of 16/32/64 channels, each with a mean and a variance.
    assert result.state == 2 * (7 * 16 + 6 * 32 + 6 * 64)
    assert result.output_shape == (1, 10)


@pytest.mark.parametrize(
    "name, multiply_adds",
    [("alexnet", 0.71e9), ("vgg16", 15.47e9), ("resnet18", 1.81e9), ("resnet50", 4.09e9)],
)
def test_summary_flops_match_torchvision_model_table(name, multiply_adds):
    """torchvision's model table lists these "GFLOPS" (multiply-adds) at 224x224."""
    result = models.summary(models.create(name), (224, 224, 3), file=None)
    assert result.flops / 2 == pytest.approx(multiply_adds, rel=0.01)
