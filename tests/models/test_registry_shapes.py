"""Output and feature-map shapes at several input sizes, and errors for sizes a model cannot take.

Shapes come from `jax.eval_shape`, so nothing is computed.
"""

import jax
import jax.numpy as jnp
import pytest

from jaxconv import models


def output_shapes(model, input_shape):
    """The output shape and the shapes of the sown feature maps."""

    def run():
        variables = model.init(jax.random.key(0), jnp.zeros(input_shape), train=False)
        return models.feature_maps(model, variables, jnp.zeros(input_shape))

    output, maps = jax.eval_shape(run)
    return output.shape, {name: value.shape for name, value in maps.items()}


@pytest.mark.parametrize(
    "size, stage_sizes",
    [(224, (56, 28, 14, 7)), (32, (8, 4, 2, 1)), (97, (25, 13, 7, 4))],
)
def test_resnet18_feature_maps(size, stage_sizes):
    output, maps = output_shapes(models.create("resnet18", num_classes=10), (2, size, size, 3))
    assert output == (2, 10)
    for index, side in enumerate(stage_sizes):
        width = 64 * 2**index
        assert maps[f"stage{index + 1}"] == (2, side, side, width)


def test_resnet50_stages_expand_by_four():
    output, maps = output_shapes(models.create("resnet50"), (1, 224, 224, 3))
    assert output == (1, 1000)
    assert maps["stage4"] == (1, 7, 7, 2048) and maps["features"] == (1, 2048)


@pytest.mark.parametrize("size", [32, 28])
def test_cifar_resnet_stages(size):
    output, maps = output_shapes(models.create("resnet20"), (2, size, size, 1))
    half, quarter = -(-size // 2), -(-size // 4)
    assert output == (2, 10)
    assert maps["stage1"] == (2, size, size, 16)
    assert maps["stage2"] == (2, half, half, 32)
    assert maps["stage3"] == (2, quarter, quarter, 64)


@pytest.mark.parametrize("name", ["alexnet", "vgg11"])
@pytest.mark.parametrize("size", [224, 100, 64])
def test_adaptive_pooling_takes_any_size(name, size):
    output, _ = output_shapes(models.create(name, num_classes=5), (1, size, size, 3))
    assert output == (1, 5)


@pytest.mark.parametrize("name, size, last", [("alexnet", 63, "conv5"), ("vgg16", 32, "stage5")])
def test_smallest_input_leaves_one_pixel(name, size, last):
    output, maps = output_shapes(models.create(name), (1, size, size, 3))
    assert output == (1, 1000) and maps[last][1:3] == (1, 1)


@pytest.mark.parametrize("name, size", [("alexnet", 62), ("vgg16", 31)])
def test_too_small_for_the_poolings(name, size):
    with pytest.raises(ValueError, match="at least"):
        output_shapes(models.create(name), (1, size, size, 3))


def test_lenet5_sizes():
    assert output_shapes(models.create("lenet5"), (3, 28, 28, 1))[1]["features"] == (3, 400)
    valid = models.create("lenet5", conv1_padding="VALID")
    assert output_shapes(valid, (3, 32, 32, 1))[1]["features"] == (3, 400)
    # 'SAME' on 32x32 leaves 6x6 maps: the dense layer takes 576 features.
    assert output_shapes(models.create("lenet5"), (3, 32, 32, 3))[1]["features"] == (3, 576)
    with pytest.raises(ValueError, match="at least 12x12"):
        output_shapes(models.create("lenet5"), (1, 8, 8, 1))


@pytest.mark.parametrize("size", [64, 96, 128])
@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_unet_same_keeps_height_and_width(size, upsampling):
    model = models.create("unet_same", num_classes=3, upsampling=upsampling)
    output, maps = output_shapes(model, (2, size, size + 16, 1))
    assert output == (2, size, size + 16, 3)
    assert maps["bottom"] == (2, size // 16, (size + 16) // 16, 1024)


def test_unet_same_names_nearest_sizes():
    with pytest.raises(ValueError, match=r"height 100.*multiple of 2\*\*depth = 16.*96 or 112"):
        output_shapes(models.create("unet_same"), (1, 100, 64, 1))
    with pytest.raises(ValueError, match="width 50.*48 or 52"):
        output_shapes(models.create("unet_same", depth=2), (1, 64, 50, 1))


def test_original_unet_572_to_388():
    output, maps = output_shapes(models.create("unet", num_classes=2), (1, 572, 572, 1))
    assert output == (1, 388, 388, 2)
    # Fig. 1 of Ronneberger et al.: 568, 280, 136, 64 at the encoder, 28 at the bottom.
    assert [maps[f"encoder{level}"][1] for level in range(1, 5)] == [568, 280, 136, 64]
    assert maps["bottom"] == (1, 28, 28, 1024)
    assert [maps[f"decoder{level}"][1] for level in range(1, 5)] == [52, 100, 196, 388]


def test_original_unet_rejects_sizes_that_do_not_crop_cleanly():
    # Valid sizes are 16k + 60 (k >= 8): the neighbours of 570 are 556 and 572.
    with pytest.raises(ValueError, match="height 570.*556 or 572"):
        output_shapes(models.create("unet"), (1, 570, 572, 1))
    with pytest.raises(ValueError, match="nearest valid: 188"):
        output_shapes(models.create("unet"), (1, 100, 100, 1))


@pytest.mark.parametrize("output", ["noise", "image"])
def test_dncnn_keeps_the_image_shape(output):
    model = models.create("dncnn", output=output, depth=5)
    shape = (2, 33, 40, 3)
    init = lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False)
    variables = jax.eval_shape(init)
    apply = lambda v: model.apply(v, jnp.zeros(shape), train=False)
    assert jax.eval_shape(apply, variables).shape == shape
