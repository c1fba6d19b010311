"""AlexNet (Krizhevsky, Sutskever and Hinton, "ImageNet classification with deep convolutional
neural networks", NeurIPS 2012) in torchvision's layout, which follows the one-GPU variant of
Krizhevsky, "One weird trick for parallelizing convolutional neural networks" (2014): 64-192-384-
256-256 channels, no local response normalisation.

conv 11x11/4 (pad 2) -> max pool 3x3/2 -> conv 5x5 (pad 2) -> max pool 3x3/2 -> three 3x3
convolutions (pad 1) -> max pool 3x3/2 -> adaptive average pooling to 6x6 -> dropout -> fc 4096 ->
dropout -> fc 4096 -> classes: 61,100,840 parameters for 1000 classes.

Dropout needs a 'dropout' RNG when `train=True`: `model.apply(v, x, train=True,
rngs={'dropout': key})`.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.layers import (
    ConvLayer,
    Convolution,
    Dtype,
    adaptive_avg_pool,
    check_input_size,
    flatten_channels_first,
)

# (features, kernel size, stride, padding, max pooling after) of conv1 ... conv5; conv1 pads by
# 2, not 11 // 2, as torchvision does.
CONVOLUTIONS = (
    (64, 11, 4, 2, True),
    (192, 5, 1, 2, True),
    (384, 3, 1, 1, False),
    (256, 3, 1, 1, False),
    (256, 3, 1, 1, True),
)
# Each 3x3/2 pooling needs 3 pixels to give 1, so pool1 needs 7 to leave 3 for pool2, which must
# leave 3 for pool3; hence 15 from conv1: floor((H + 4 - 11) / 4) + 1 >= 15, H >= 63.
MIN_INPUT_SIZE = 63


class AlexNet(nn.Module):
    """AlexNet on NHWC input; returns logits (N, num_classes).

    Convolutions are `conv1` ... `conv5` (each with `conv/`), the classifier `fc1`, `fc2`, `head`.
    The pooled 6x6 map is flattened in PyTorch's channel-major order. The feature maps
    'conv1' ... 'conv5' are sown (see `jaxconv.models.feature_maps`).
    """

    num_classes: int = 1000
    dropout_rate: float = 0.5
    convolution: Convolution = lax.conv_general_dilated
    batch_norm_axis: str | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_input_size(x.shape[1:3], MIN_INPUT_SIZE, "AlexNet")
        feature_maps = {}
        for index, (features, kernel_size, strides, padding, pooled) in enumerate(CONVOLUTIONS):
            name = f"conv{index + 1}"
            x = ConvLayer(
                features,
                kernel_size,
                strides=strides,
                padding=((padding, padding), (padding, padding)),
                pooling="max" if pooled else None,
                pool_size=3,
                pool_strides=2,
                convolution=self.convolution,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name=name,
            )(x)
            feature_maps[name] = x
        self.sow("intermediates", "feature_maps", feature_maps)
        x = flatten_channels_first(adaptive_avg_pool(x, (6, 6)))
        dense = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        # torchvision puts dropout before fc1 and fc2, where VGG puts it after.
        for index in range(2):
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
            x = nn.relu(nn.Dense(4096, name=f"fc{index + 1}", **dense)(x))
        return nn.Dense(self.num_classes, name="head", **dense)(x)
