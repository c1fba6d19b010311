"""Boundary extension of an array, with `numpy.pad`'s meanings under shorter names.

| here        | numpy.pad    | scipy.ndimage | 1 2 3 extended by 2 on the left |
| ----------- | ------------ | ------------- | ------------------------------- |
| 'zero'      | 'constant'   | 'constant'    | 0 0 . 1 2 3                     |
| 'reflect'   | 'reflect'    | 'mirror'      | 3 2 . 1 2 3                     |
| 'symmetric' | 'symmetric'  | 'reflect'     | 2 1 . 1 2 3                     |
| 'edge'      | 'edge'       | 'nearest'     | 1 1 . 1 2 3                     |
| 'wrap'      | 'wrap'       | 'wrap'        | 2 3 . 1 2 3                     |

Extensions wider than the array repeat the rule (numpy's behaviour), so any width is allowed.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp

NUMPY_NAMES = {
    "zero": "constant",
    "reflect": "reflect",
    "symmetric": "symmetric",
    "edge": "edge",
    "wrap": "wrap",
}


def pad(array: jax.Array, widths: Sequence[tuple[int, int]], padding: str) -> jax.Array:
    """Extends the trailing `len(widths)` axes of `array` by `(before, after)` cells each.

    Leading axes beyond those named are not extended; a `(0, 0)` entry skips an axis (channels).
    """
    widths = tuple(tuple(width) for width in widths)
    if not any(before or after for before, after in widths):
        return array
    full_widths = ((0, 0),) * (array.ndim - len(widths)) + widths
    return jnp.pad(array, full_widths, mode=NUMPY_NAMES[padding])
