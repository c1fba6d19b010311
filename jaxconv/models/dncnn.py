"""DnCNN (Zhang, Zuo, Chen, Meng and Zhang, "Beyond a Gaussian denoiser: residual learning of deep
CNN for image denoising", IEEE TIP 2017): a plain stack of 3x3 'SAME' convolutions that predicts
the noise (residual learning), so the denoised image is `x - model(x)`.

Depth 17 with 64 channels (the paper's DnCNN-S): conv + ReLU, 15 x (conv + batch norm + ReLU),
then a conv to the output channels. 556,096 parameters for grey images; the middle and last
convolutions have no bias (batch norm follows the middle ones; the last, like KAIR's reference
implementation, predicts zero-mean noise).

Initialisation: He et al.'s in its forward form (variance 2 / fan-in, as the paper and PyTorch's
`kaiming_normal_` use it) for the stem and middle layers, and zeros for the head, so an untrained
DnCNN estimates no noise and returns its input. With batch norm every middle layer's output has
unit variance, so any random head starts from a noise estimate near the image's whole range
(0.6 mean squared error on [0, 1] pixels with He's variance against the 0.01 of sigma 25's
noise), which Adam took hundreds of steps to undo; from zeros the first steps already denoise.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.layers import Conv, ConvNormAct, Convolution, Dtype

OUTPUTS = ("noise", "image")
he_normal_fan_in = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


class DnCNN(nn.Module):
    """DnCNN on NHWC input; returns (N, H, W, num_classes).

    `depth` counts all convolutions, `width` is their channels. `num_classes` is the number of
    output channels (the field every model sizes its output with); None means the input's
    channel count. `output='noise'` returns the predicted noise (the paper's residual);
    `output='image'` returns `x - noise` (needs `num_classes` equal to the input channels).
    Layers are `stem`, `block1` ... `block{depth - 2}` and `head`.
    """

    depth: int = 17
    width: int = 64
    num_classes: int | None = None
    batch_norm: bool = True
    output: str = "noise"
    convolution: Convolution = lax.conv_general_dilated
    batch_norm_axis: str | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        if self.output not in OUTPUTS:
            raise ValueError(f"unknown output {self.output!r}; known: {', '.join(OUTPUTS)}")
        layer = dict(
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=he_normal_fan_in,
            convolution=self.convolution,
            batch_norm_axis=self.batch_norm_axis,
        )
        y = ConvNormAct(self.width, batch_norm=False, name="stem", **layer)(x, train=train)
        for index in range(self.depth - 2):
            block = ConvNormAct(
                self.width, batch_norm=self.batch_norm, name=f"block{index + 1}", **layer
            )
            y = block(y, train=train)
        out_channels = self.num_classes or x.shape[-1]
        noise = Conv(
            out_channels,
            (3, 3),
            use_bias=False,
            kernel_init=nn.initializers.zeros,
            conv_general_dilated=self.convolution,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="head",
        )(y)
        return noise if self.output == "noise" else x - noise
