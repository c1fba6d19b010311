"""Grain pipelines: a source plus the config in, numpy batches out.

Training batches come from one global order: the example indices are permuted by seed, anew
each epoch, and cut into global batches. Process `p` of `P` reads only rows
`[p * B/P, (p+1) * B/P)` of each global batch, and augmentations draw their parameters for the
whole global batch from a generator seeded by (seed, batch index). So the global batch at step
`s` is the same on 1 process or on 8, and the same after a restart: the iterator's state is the
index of the next batch, saved with every checkpoint.

Evaluation reads the split once, in order, and pads the last batch with masked rows instead of
dropping examples.
"""

import dataclasses

import grain
import numpy as np

from jaxconv.data import augment
from jaxconv.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Sharding:
    """Which part of each global batch this process reads."""

    process_index: int = 0
    process_count: int = 1

    def rows(self, global_size: int) -> slice:
        if global_size % self.process_count:
            raise ConfigError(
                f"batch size {global_size} does not divide across "
                f"{self.process_count} processes; use a multiple of "
                f"{self.process_count}."
            )
        local = global_size // self.process_count
        return slice(self.process_index * local, (self.process_index + 1) * local)


def read(source, indices: np.ndarray) -> dict:
    """Reads `indices` from `source` and stacks them into a batch of arrays."""
    if hasattr(source, "__getitems__"):
        examples = source.__getitems__(indices)
    else:
        examples = [source[int(i)] for i in indices]
    return {key: np.stack([np.asarray(e[key]) for e in examples]) for key in examples[0]}


def normalise(images: np.ndarray, mean, std) -> np.ndarray:
    """Pixels on the 0-255 scale (uint8, or float for noisy images) -> float32
    (x / 255 - mean) / std, per channel when mean and std are tuples."""
    scaled = images.astype(np.float32) * np.float32(1 / 255)
    return (scaled - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


# Batch entries that are images on the 0-255 scale: the input, and a restoration target.
IMAGE_KEYS = ("image", "target")


def normalise_images(batch: dict, mean, std) -> dict:
    return {
        key: normalise(value, mean, std) if key in IMAGE_KEYS else value
        for key, value in batch.items()
    }


class EpochOrder:
    """The example order: epoch `e` visits the examples in the permutation drawn from
    (seed, e), so position `p` of the endless order is example `perm[p // n][p % n]`.

    Whole batches of positions are looked up at once (one lookup per example through a
    shuffled grain dataset cost most of a 28x28 batch's reading time).
    """

    def __init__(self, num_examples: int, seed: int):
        self.num_examples, self.seed = num_examples, seed
        self._permutations: dict[int, np.ndarray] = {}

    def permutation(self, epoch: int) -> np.ndarray:
        permutation = self._permutations.get(epoch)
        if permutation is None:
            permutation = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
            # Reader threads work on neighbouring batches: two epochs are enough to keep.
            self._permutations = {epoch - 1: self._permutations.get(epoch - 1), epoch: permutation}
        return permutation

    def __getitem__(self, positions: np.ndarray) -> np.ndarray:
        epochs, offsets = np.divmod(np.asarray(positions, np.int64), self.num_examples)
        indices = np.empty_like(offsets)
        for epoch in np.unique(epochs):
            chosen = epochs == epoch
            indices[chosen] = self.permutation(int(epoch))[offsets[chosen]]
        return indices


class _GlobalBatchReader:
    """Maps a global batch index to this process's rows of that batch, augmented."""

    def __init__(self, source, order, *, batch_size, seed, sharding, augmentation, mean, std):
        self.source, self.order = source, order
        self.batch_size, self.seed = batch_size, seed
        self.rows = sharding.rows(batch_size)
        self.augmentation, self.mean, self.std = augmentation, mean, std

    def __call__(self, batch_index: int) -> dict:
        start = batch_index * self.batch_size
        indices = self.order[np.arange(start + self.rows.start, start + self.rows.stop)]
        batch = read(self.source, indices)
        rng = np.random.default_rng([self.seed, batch_index])
        batch = self.augmentation(batch, rng, self.batch_size, self.rows)
        return normalise_images(batch, self.mean, self.std)


def train_dataset(
    source,
    *,
    batch_size: int,
    seed: int,
    augment_spec: str = "",
    mean=0.0,
    std=1.0,
    sharding: Sharding = Sharding(),
) -> grain.MapDataset:
    """An endless MapDataset whose element `b` is this process's part of global batch `b`."""
    if batch_size > len(source):
        raise ConfigError(
            f"batch size {batch_size} exceeds the {len(source)} examples of the "
            "training split; lower batch_size."
        )
    order = EpochOrder(len(source), seed)
    reader = _GlobalBatchReader(
        source,
        order,
        batch_size=batch_size,
        seed=seed,
        sharding=sharding,
        augmentation=augment.parse(augment_spec),
        mean=mean,
        std=std,
    )
    # Endless, as grain's repeat() is: as many batches as a 64-bit position allows.
    return grain.MapDataset.range(np.iinfo(np.int64).max // batch_size).map(reader)


def train_iterator(
    dataset: grain.MapDataset, *, num_threads: int = 4, prefetch: int = 8
) -> grain.DatasetIterator:
    """A checkpointable iterator over `dataset`, read ahead by `num_threads` threads."""
    options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
    return iter(dataset.to_iter_dataset(options))


def eval_batches(source, *, batch_size: int, mean=0.0, std=1.0, sharding: Sharding = Sharding()):
    """Yields this process's rows of each global evaluation batch, in order, once.

    The last batch is padded to full size; its `mask` is 1 for real examples and 0 for padding,
    so metrics count every example exactly once.
    """
    rows = sharding.rows(batch_size)
    for start in range(0, len(source), batch_size):
        positions = np.arange(start + rows.start, start + rows.stop)
        real = positions < len(source)
        batch = normalise_images(read(source, np.where(real, positions, 0)), mean, std)
        batch["mask"] = real.astype(np.float32)
        yield batch


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    return max(1, num_examples // batch_size)
