"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 1998).

Layout 6-16-120-84-classes: conv 5x5 (6) -> pool 2x2 -> conv 5x5 (16) -> pool 2x2 -> flatten
(16 x 5 x 5 = 400 features) -> dense 120 -> dense 84 -> dense classes: 61,706 parameters for a
1-channel input and 10 classes.

The paper fed 32x32 images (MNIST's 28x28 digits padded by 2). Here `conv1_padding='SAME'` (the
default) pads 28x28 input inside the first convolution, which is the same computation; for 32x32
input pass `conv1_padding='VALID'`. Other sizes work too: the dense layers take whatever the
flattened feature map holds (e.g. 576 features for 32x32 input with 'SAME'), so the parameter
count then differs from 61,706.

The modern flavour (ReLU, max pooling) is the default; `activation='tanh', pooling='avg'` gives the
1998 flavour. The paper's sparse C3 connection table, trainable subsampling coefficients and RBF
output layer are not reproduced: every layer here is fully connected to the previous one, which is
the layout whose count is 61,706.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.layers import ConvLayer, Convolution, Dtype, activation_by_name

# conv 5x5 'SAME' keeps H; pool halves it; conv 5x5 'VALID' removes 4; pool halves again.
MIN_INPUT_SIZE = {"SAME": 12, "VALID": 16}


class LeNet5(nn.Module):
    """LeNet-5 on NHWC input; returns logits (N, num_classes).

    The feature maps 'conv1', 'conv2' and 'features' (the flattened vector) are sown (see
    `jaxconv.models.feature_maps`).
    """

    num_classes: int = 10
    activation: str = "relu"
    pooling: str = "max"
    conv1_padding: str = "SAME"
    convolution: Convolution = lax.conv_general_dilated
    batch_norm_axis: str | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        del train  # no batch norm or dropout in LeNet-5
        check_input_size(x.shape[1:3], self.conv1_padding)
        layer = dict(
            kernel_size=5,
            activation=self.activation,
            pooling=self.pooling,
            convolution=self.convolution,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        conv1 = ConvLayer(6, padding=self.conv1_padding, name="conv1", **layer)(x)
        conv2 = ConvLayer(16, padding="VALID", name="conv2", **layer)(conv1)
        x = conv2.reshape((conv2.shape[0], -1))
        feature_maps = dict(conv1=conv1, conv2=conv2, features=x)
        self.sow("intermediates", "feature_maps", feature_maps)
        dense = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        activation = activation_by_name(self.activation)
        x = activation(nn.Dense(120, name="fc1", **dense)(x))
        x = activation(nn.Dense(84, name="fc2", **dense)(x))
        return nn.Dense(self.num_classes, name="head", **dense)(x)


def check_input_size(size: tuple[int, int], conv1_padding: str) -> None:
    """Raise a ValueError when H or W is too small to leave a map after conv2's pooling."""
    minimum = MIN_INPUT_SIZE.get(str(conv1_padding).upper())
    if minimum is not None and min(size) < minimum:
        raise ValueError(
            f"LeNet-5 with conv1_padding={conv1_padding!r} needs input of at least "
            f"{minimum}x{minimum}, got {size[0]}x{size[1]}; the paper's sizes are 28x28 with "
            "'SAME' or 32x32 with 'VALID'"
        )
