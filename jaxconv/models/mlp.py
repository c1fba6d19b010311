"""A fully connected baseline: flatten -> hidden layers -> classes.

The default widths 300-100 are the 3-layer network of LeCun et al. 1998 (Table/Fig. 9 of
"Gradient-based learning applied to document recognition"), the baseline LeNet-5 is compared with.
One hidden layer is `hidden_sizes=(300,)`.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxconv.layers import Dtype, activation_by_name


class MLP(nn.Module):
    """Multi-layer perceptron on NHWC (or any (N, ...)) input; returns logits (N, num_classes).

    Hidden layers are named `hidden1`, `hidden2`, ...; the classifier is `head`. Their outputs
    are sown under the same names (see `jaxconv.models.feature_maps`).
    """

    num_classes: int = 10
    hidden_sizes: Sequence[int] = (300, 100)
    activation: str = "relu"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        del train  # no batch norm or dropout
        if len(self.hidden_sizes) == 0:
            raise ValueError("MLP needs at least one hidden layer: hidden_sizes=(300,) for example")
        activation = activation_by_name(self.activation)
        dense = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        x = x.reshape((x.shape[0], -1))
        feature_maps = {}
        for index, width in enumerate(self.hidden_sizes, start=1):
            x = activation(nn.Dense(width, name=f"hidden{index}", **dense)(x))
            feature_maps[f"hidden{index}"] = x
        self.sow("intermediates", "feature_maps", feature_maps)
        return nn.Dense(self.num_classes, name="head", **dense)(x)
