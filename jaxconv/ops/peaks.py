"""Peaks of feature maps: non-maximum suppression done with max pooling.

A cell is a peak when it is the largest value within `min_distance` cells along every axis (the
window of a stride-1, 'same' max pooling of width `2 * min_distance + 1`) and it lies strictly
above `threshold`. Neighbouring cells of equal value (a plateau) would all pass that test, so
among equal candidates one per window is kept: the first in row-major order. A second max
pooling, over the candidates' negated flat indices, finds it. Every kept peak is then more than
`min_distance` cells (Chebyshev distance) from any other, and each group of tied candidates
keeps at least one. This works in any number of dimensions; give `min_distance` 0 along an axis
to treat the slices along it independently (e.g. a batch axis).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxconv.ops import arguments
from jaxconv.ops.pooling import lowest_value, max_pool


class Peaks(NamedTuple):
    """Peaks sorted by score, highest first (ties: row-major order).

    `coordinates`: `(K, ndim)` int32 indices into the feature map; `scores`: `(K,)` the feature
    map's values there. Rows past the last peak of a fixed-size result (`max_peaks`) hold
    coordinates -1 and the lowest score of the dtype (-inf for floats).
    """

    coordinates: jax.Array
    scores: jax.Array


def peak_mask(feature_map, min_distance, threshold=None) -> jax.Array:
    """Boolean map of the peaks of `feature_map` (module docstring). Jit-able.

    `min_distance`: an int, or one per axis, >= 0. `threshold`: peaks must be strictly above it;
    None keeps every local maximum.
    """
    feature_map = jnp.asarray(feature_map)
    distances = arguments.per_axis(min_distance, feature_map.ndim, "min_distance", minimum=0)
    window = tuple(2 * distance + 1 for distance in distances)
    threshold = -jnp.inf if threshold is None else threshold
    return _peak_mask(feature_map, threshold, window=window)


def find_peaks(feature_map, min_distance, threshold=None, *, max_peaks: int | None = None):
    """Coordinates and scores of the peaks of `feature_map`, highest score first.

    Without `max_peaks` the result holds every peak, so its size depends on the data and the
    call cannot be traced by `jax.jit`; with it, exactly `max_peaks` rows come back (the highest
    peaks, then filler rows, see `Peaks`), and the call is jit-able.
    """
    feature_map = jnp.asarray(feature_map)
    mask = peak_mask(feature_map, min_distance, threshold)
    if max_peaks is None:
        if isinstance(mask, jax.core.Tracer):
            raise ValueError(
                "find_peaks under jax.jit needs a fixed output size: pass max_peaks=<int>"
            )
        count = int(mask.sum())
    else:
        count = arguments.per_axis(max_peaks, 1, "max_peaks", minimum=0)[0]
    return _gather(feature_map, mask, count=count)


@functools.partial(jax.jit, static_argnames=("window",))
def _peak_mask(feature_map, threshold, *, window):
    neighbourhood_max = max_pool(feature_map, window, stride=1, mode="same")
    candidates = (feature_map == neighbourhood_max) & (feature_map > threshold)
    # Ties within a window: the candidate with the smallest flat index wins, i.e. the largest
    # negated index; cells that are not candidates take part with the lowest possible value.
    index = jnp.arange(feature_map.size, dtype=jnp.int32).reshape(feature_map.shape)
    rank = jnp.where(candidates, -index, jnp.iinfo(jnp.int32).min)
    first = max_pool(rank, window, stride=1, mode="same")
    return candidates & (first == -index)


@functools.partial(jax.jit, static_argnames=("count",))
def _gather(feature_map, mask, *, count):
    scores, flat_mask = feature_map.ravel(), mask.ravel()
    by_score = jnp.argsort(scores, descending=True, stable=True)
    # Peaks first, keeping their order by score (and row-major order among equal scores).
    order = by_score[jnp.argsort(~flat_mask[by_score], stable=True)]
    kept = order[: min(count, order.size)]
    coordinates = jnp.stack(jnp.unravel_index(kept, feature_map.shape), axis=-1).astype(jnp.int32)
    is_peak = flat_mask[kept]
    coordinates = jnp.where(is_peak[:, None], coordinates, -1)
    peak_scores = jnp.where(is_peak, scores[kept], lowest_value(scores.dtype))
    filler = count - kept.size  # more rows asked for than the map has cells
    coordinates = jnp.pad(coordinates, ((0, filler), (0, 0)), constant_values=-1)
    peak_scores = jnp.pad(peak_scores, (0, filler), constant_values=lowest_value(scores.dtype))
    return Peaks(coordinates, peak_scores)
