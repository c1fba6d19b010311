"""Convolution as mathematics: exact N-D convolution, pooling, kernels and peak detection.

Pure `jax.numpy` and `lax`, no Flax: everything here is jit-able and differentiable, and is
checked against scipy and numpy in `tests/ops/`.

- `convolve`, `correlate` (one kernel, leading batch axes) and `convolve_bank`,
  `correlate_bank` (M kernels over C channels, channels last), with scipy's modes 'full',
  'same', 'valid', `numpy.pad` paddings, strides, and a direct or FFT method chosen by size.
- `max_pool`, `avg_pool` in N dimensions; `pad`, numpy.pad's boundary extensions by name.
- Kernels: `gaussian` (and its derivatives), `laplacian`, `laplacian_of_gaussian`, `sobel`,
  `prewitt`, `derivative`, `box`, `disk`, `matched_filter`.
- Feature maps: `peak_mask`, `find_peaks`, `image_pyramid`, `multiscale_response`.
"""

from jaxconv.ops.convolution import (
    choose_method,
    convolve,
    convolve_bank,
    correlate,
    correlate_bank,
)
from jaxconv.ops.kernels import (
    box,
    derivative,
    disk,
    gaussian,
    laplacian,
    laplacian_of_gaussian,
    matched_filter,
    prewitt,
    sobel,
)
from jaxconv.ops.padding import pad
from jaxconv.ops.peaks import Peaks, find_peaks, peak_mask
from jaxconv.ops.pooling import avg_pool, max_pool
from jaxconv.ops.scales import image_pyramid, multiscale_response

__all__ = [
    "Peaks",
    "avg_pool",
    "box",
    "choose_method",
    "convolve",
    "convolve_bank",
    "correlate",
    "correlate_bank",
    "derivative",
    "disk",
    "find_peaks",
    "gaussian",
    "image_pyramid",
    "laplacian",
    "laplacian_of_gaussian",
    "matched_filter",
    "max_pool",
    "multiscale_response",
    "pad",
    "peak_mask",
    "prewitt",
    "sobel",
]
