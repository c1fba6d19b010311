"""Any dataset of the TFDS catalog, by the name `tfds:<name>` (`tfds:mnist`, `tfds:cifar10`,
`tfds:oxford_iiit_pet`, ...), read through `tfds.data_source` without TensorFlow.

A dataset already prepared in array_record format is read from the TFDS data folder. Otherwise
TFDS downloads it (prepared files from its public bucket when they exist there, `try_gcs=True`),
but only after a quick check that its servers answer: without network TFDS retries for minutes
before it gives up, and a run should say at once what is missing.

jaxconv keeps its data under one root, `data_dir` or else `$JAXCONV_DATA_DIR`; TFDS's prepared
datasets live in its `tfds/` subfolder. Without either, TFDS's own default applies
(`$TFDS_DATA_DIR`, else `~/tensorflow_datasets`).
"""

import dataclasses
import os
import pathlib
import socket
import threading

import numpy as np
import tensorflow_datasets as tfds

from jaxconv.data import imaging
from jaxconv.data.source import RecordSource, fits_in_memory, to_memory
from jaxconv.errors import ConfigError, DataError, DependencyError, UnreachableError

DATA_DIR_VARIABLE = "JAXCONV_DATA_DIR"
# TFDS's public bucket, where `try_gcs` finds prepared datasets; answering means online.
CATALOG_ADDRESS = ("storage.googleapis.com", 443)
PROBE_TIMEOUT_S = 5.0


@dataclasses.dataclass(frozen=True)
class MaskLabels:
    """How a catalog dataset stores per-pixel labels: `feature` holds `first + class id`."""

    feature: str
    first: int
    num_classes: int
    class_names: tuple[str, ...] = ()


# Segmentation labels of catalog datasets, chosen with `label_key=<feature>`. The Oxford-IIIT
# Pet trimaps hold 1 (pet), 2 (background), 3 (border) (Parkhi et al., CVPR 2012).
MASK_LABELS = {
    "oxford_iiit_pet": MaskLabels(
        "segmentation_mask", first=1, num_classes=3, class_names=("pet", "background", "border")
    ),
}


def data_root(data_dir: str | None) -> pathlib.Path | None:
    """jaxconv's data folder: `data_dir`, else `$JAXCONV_DATA_DIR`, else None."""
    root = data_dir or os.environ.get(DATA_DIR_VARIABLE)
    return pathlib.Path(root).expanduser() if root else None


def tfds_dir(data_dir: str | None) -> str | None:
    """Where TFDS prepares and finds datasets; None lets TFDS choose its default."""
    root = data_root(data_dir)
    return str(root / "tfds") if root else None


def check_reachable(address: tuple[str, int] | None = None, timeout: float | None = None) -> None:
    """Raises ConnectionError unless a TCP connection to `address` (default: TFDS's bucket)
    opens within `timeout` seconds (default PROBE_TIMEOUT_S).

    The connection runs in a daemon thread, so a name lookup that hangs cannot hold us longer.
    """
    address = address or CATALOG_ADDRESS
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    outcome = {}

    def connect():
        try:
            socket.create_connection(address, timeout=timeout).close()
            outcome["error"] = None
        except OSError as error:
            outcome["error"] = error

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    error = outcome.get("error", f"no answer within {timeout:g} s")
    if error is not None:
        raise UnreachableError(f"{address[0]}:{address[1]} is unreachable ({error})")


def open_records(name: str, split: str, data_dir: str | None = None):
    """The TFDS data source of catalog dataset `name`, downloading it only when online."""
    folder = tfds_dir(data_dir)
    try:
        return tfds.data_source(name, split=split, data_dir=folder, download=False)
    except Exception as error:  # TFDS raises several kinds when the dataset is not prepared
        if tfds.builder(name, data_dir=folder).is_prepared():
            raise  # prepared, so the request itself is wrong (e.g. an unknown split)
        local_error = error
    where = folder or "TFDS's default data folder (~/tensorflow_datasets)"
    try:
        check_reachable()
    except ConnectionError as error:
        raise UnreachableError(
            f"TFDS dataset '{name}' is not prepared in {where} and cannot be downloaded: "
            f"{error}. Prepare it on a machine with network access "
            f"(python -c \"import tensorflow_datasets as tfds; tfds.data_source('{name}')\") and "
            f"copy ~/tensorflow_datasets/{name} into {where}, or set data.data_dir (or "
            f"${DATA_DIR_VARIABLE}) to a folder whose tfds/ subfolder holds it."
        ) from local_error
    try:
        return tfds.data_source(name, split=split, data_dir=folder, try_gcs=True)
    except ModuleNotFoundError as error:
        if error.name != "tensorflow":
            raise
        raise DependencyError(
            f"preparing TFDS dataset '{name}' from its original files needs TensorFlow, which "
            "TFDS uses to encode images: pip install tensorflow (reading prepared array_record "
            "files does not need it)."
        ) from error


def builder_info(name: str, data_dir: str | None = None):
    """The catalog's description of `name` (features, classes), from code: no download."""
    try:
        return tfds.builder(name, data_dir=tfds_dir(data_dir)).info
    except tfds.core.registered.DatasetNotFoundError:
        raise ConfigError(
            f"'{name}' is not a TFDS catalog dataset; see "
            "https://www.tensorflow.org/datasets/catalog/overview for the names."
        ) from None


def _label_spec(name, info, label_key, num_classes) -> tuple[MaskLabels | None, int]:
    """Whether labels are per-pixel (and how), and how many classes they range over."""
    if label_key not in info.features:
        raise ConfigError(
            f"tfds:{name} has no feature '{label_key}' for data.label_key; its features: "
            f"{', '.join(sorted(info.features))}."
        )
    feature = info.features[label_key]
    known = MASK_LABELS.get(name)
    if known is not None and known.feature == label_key:
        return known, num_classes or known.num_classes
    num_classes = num_classes or getattr(feature, "num_classes", None)
    if not num_classes:
        raise DataError(
            f"tfds:{name} does not say how many classes '{label_key}' has; set data.num_classes."
        )
    per_pixel = len(feature.shape) >= 2
    return (MaskLabels(label_key, 0, num_classes) if per_pixel else None), num_classes


def _class_names(feature, mask: MaskLabels | None) -> tuple[str, ...]:
    if mask is not None:
        return mask.class_names
    return tuple(getattr(feature, "names", None) or ())


def example_transform(mask: MaskLabels | None, label_key: str, image_size=None):
    """Maps a catalog example to `image` uint8 HWC and `label` (int32, or an int32 (H, W) map)."""

    def transform(example: dict) -> dict:
        image = imaging.as_hwc(example["image"])
        label = np.asarray(example[label_key])
        if mask is not None:
            label = label.reshape(label.shape[:2]).astype(np.int32) - mask.first
        if image_size is not None:
            image = imaging.resize_image(image, image_size)
            if mask is not None:
                label = imaging.resize_mask(label, image_size)
        return {"image": image, "label": label.astype(np.int32)}

    return transform


def load(
    name: str,
    split: str,
    data_dir: str | None = None,
    *,
    image_size: int | None = None,
    label_key: str | None = None,
    num_classes: int | None = None,
    in_memory: bool | None = None,
):
    """The source of catalog dataset `name` for `split` (any TFDS split: 'validation',
    'train[:90%]', ...).

    Images of varying size (e.g. Oxford-IIIT Pet) need `image_size`, to which images and
    per-pixel labels are resized. `in_memory` holds the decoded split in memory; by default only
    splits of fixed-size images under `MEMORY_LIMIT_BYTES` are.
    """
    info = builder_info(name, data_dir)
    label_key = label_key or "label"
    mask, num_classes = _label_spec(name, info, label_key, num_classes)
    stored_shape = tuple(info.features["image"].shape)
    if image_size is None and None in stored_shape[:2]:
        raise DataError(
            f"tfds:{name} has images of varying size; set data.image_size (e.g. 128) to resize "
            "them (and their per-pixel labels) to one size."
        )
    height, width = imaging.size_pair(image_size) if image_size else stored_shape[:2]
    channels = stored_shape[2] if len(stored_shape) == 3 else 1
    source = RecordSource(
        open_records(name, split, data_dir),
        example_transform(mask, label_key, image_size),
        num_classes=num_classes,
        image_shape=(height, width, channels),
        name=f"tfds:{name}/{split}",
        class_names=_class_names(info.features[label_key], mask),
    )
    if in_memory is None:
        in_memory = None not in stored_shape and fits_in_memory(len(source), source.image_shape)
    return to_memory(source) if in_memory else source
