"""Parameter counts against published figures; shapes only, so the big models cost nothing."""

import jax
import jax.numpy as jnp
import pytest

from jaxconv import models


def parameter_tree(model, input_shape):
    init = lambda: model.init(jax.random.key(0), jnp.zeros(input_shape), train=False)
    return jax.eval_shape(init)["params"]


def count(tree):
    return sum(leaf.size for leaf in jax.tree.leaves(tree))


IMAGENET = (1, 224, 224, 3)


@pytest.mark.parametrize(
    "name, num_classes, input_shape, expected",
    [
        ("lenet5", 10, (1, 28, 28, 1), 61_706),
        ("lenet5_1998", 10, (1, 28, 28, 1), 61_706),
        ("alexnet", 1000, IMAGENET, 61_100_840),
        ("vgg16", 1000, IMAGENET, 138_357_544),
        ("vgg16_bn", 1000, IMAGENET, 138_365_992),
        ("resnet18", 1000, IMAGENET, 11_689_512),
        ("resnet34", 1000, IMAGENET, 21_797_672),
        ("resnet50", 1000, IMAGENET, 25_557_032),
        ("resnet101", 1000, IMAGENET, 44_549_160),
        ("resnet152", 1000, IMAGENET, 60_192_808),
        ("unet", 2, (1, 572, 572, 1), 31_030_658),
        # torchvision: vgg11 132,863,336; vgg13 133,047,848; vgg19 143,667,240.
        ("vgg11", 1000, IMAGENET, 132_863_336),
        ("vgg13", 1000, IMAGENET, 133_047_848),
        ("vgg19", 1000, IMAGENET, 143_667_240),
        ("vgg19_bn", 1000, IMAGENET, 143_678_248),
    ],
)
def test_published_parameter_counts(name, num_classes, input_shape, expected):
    model = models.create(name, num_classes=num_classes)
    assert count(parameter_tree(model, input_shape)) == expected


def test_lenet5_on_32x32_with_valid_first_convolution_is_the_paper_layout():
    model = models.create("lenet5", conv1_padding="VALID")
    assert count(parameter_tree(model, (1, 32, 32, 1))) == 61_706


@pytest.mark.parametrize(
    "name, millions",
    [
        ("resnet20", 0.27),
        ("resnet32", 0.46),
        ("resnet44", 0.66),
        ("resnet56", 0.85),
        ("resnet110", 1.7),
    ],
)
def test_cifar_resnets_match_he_et_al_table_6(name, millions):
    total = count(parameter_tree(models.create(name, num_classes=10), (1, 32, 32, 3)))
    assert round(total / 1e6, 2 if millions < 1 else 1) == millions


def test_resnet8_counted_by_hand():
    # Stem 3->16, then one basic block a stage (two 3x3 convolutions, each with batch norm),
    # zero-padded shortcuts (no parameters), the 64->10 classifier.
    convolutions = [(3, 16), (16, 16), (16, 16), (16, 32), (32, 32), (32, 64), (64, 64)]
    expected = sum(9 * i * o + 2 * o for i, o in convolutions) + 64 * 10 + 10
    model = models.create("resnet8", num_classes=10)
    assert count(parameter_tree(model, (1, 32, 32, 3))) == expected == 75_290


def test_dncnn_has_the_papers_size():
    # conv 1->64 with bias, 15 x (conv 64->64 + batch norm), conv 64->1: 0.556M (Zhang et al.).
    expected = (9 * 64 + 64) + 15 * (9 * 64 * 64 + 2 * 64) + 9 * 64
    assert count(parameter_tree(models.create("dncnn"), (1, 40, 40, 1))) == expected == 556_096


def projection_parameters(tree):
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return sum(leaf.size for path, leaf in leaves if "projection" in jax.tree_util.keystr(path))


# Projections by hand: per stage, a 1x1 convolution in -> out plus batch norm (2 x out).
RESNET18_PROJECTIONS = sum(i * o + 2 * o for i, o in ((64, 128), (128, 256), (256, 512)))
RESNET50_PROJECTIONS = sum(
    i * o + 2 * o for i, o in ((64, 256), (256, 512), (512, 1024), (1024, 2048))
)


@pytest.mark.parametrize(
    "depth, projections",
    [
        (18, RESNET18_PROJECTIONS),
        (34, RESNET18_PROJECTIONS),
        (50, RESNET50_PROJECTIONS),
        (101, RESNET50_PROJECTIONS),
        (152, RESNET50_PROJECTIONS),
    ],
)
def test_plain_twin_is_resnet_minus_projection_shortcuts(depth, projections):
    residual = parameter_tree(models.create(f"resnet{depth}"), IMAGENET)
    plain = parameter_tree(models.create(f"plain{depth}"), IMAGENET)
    assert projection_parameters(residual) == projections
    assert count(plain) == count(residual) - projections
    # Same layers under the same names, apart from the projections.
    flat = lambda tree: {
        jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)
    }
    assert flat(plain) == {key for key in flat(residual) if "projection" not in key}


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_cifar_plain_twin_has_the_same_count_with_option_a_shortcuts(depth):
    residual = parameter_tree(models.create(f"resnet{depth}"), (1, 32, 32, 3))
    plain = parameter_tree(models.create(f"plain{depth}"), (1, 32, 32, 3))
    assert count(plain) == count(residual)


@pytest.mark.parametrize("size", [64, 96, 128])
def test_unet_same_count_does_not_depend_on_input_size(size):
    model = models.create("unet_same", num_classes=3)
    assert count(parameter_tree(model, (1, size, size, 1))) == count(
        parameter_tree(model, (1, 64, 64, 1))
    )


@pytest.mark.parametrize("channels, classes", [(1, 10), (3, 100), (4, 7)])
def test_any_number_of_channels_and_classes(channels, classes):
    # The first convolution grows by 64 * 7 * 7 per extra channel; the head by 513 per class.
    tree = parameter_tree(models.create("resnet18", num_classes=classes), (1, 64, 64, channels))
    assert count(tree) == 11_689_512 + 64 * 49 * (channels - 3) + 513 * (classes - 1000)
