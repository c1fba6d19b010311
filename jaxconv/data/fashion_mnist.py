"""Fashion-MNIST (Xiao et al., 2017): 60,000 training and 10,000 test images of clothing,
28x28 grey, 10 classes, prepared by a TFDS builder from the four standard IDX files.

The files are looked for in `data_dir`, then `$JAXCONV_DATA_DIR` (each also in a `fashion-mnist/`
subfolder), then the folder of the Debian package `dataset-fashion-mnist`. They are prepared
once into array_record files in the TFDS data folder (see `jaxconv.data.catalog.tfds_dir`) and
read back with `builder.as_data_source`; the builder uses only `Tensor` features, so neither
preparing nor reading imports TensorFlow. Without local files, TFDS's own catalog
`fashion_mnist` is used when the network allows.
"""

import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from jaxconv.data import catalog, idx
from jaxconv.data.source import RecordSource, fits_in_memory, to_memory
from jaxconv.errors import DataError, MissingFileError

DEBIAN_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")
# split -> (images, labels), the names the files are distributed under.
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IMAGE_SHAPE = (28, 28, 1)
INSTALL_COMMAND = "apt-get update && apt-get install -y dataset-fashion-mnist"


def search_dirs(data_dir: str | None = None) -> list[pathlib.Path]:
    """The folders looked in for the IDX files, in order."""
    roots = [data_dir, os.environ.get(catalog.DATA_DIR_VARIABLE)]
    folders = []
    for root in filter(None, roots):
        root = pathlib.Path(root).expanduser()
        folders += [root, root / "fashion-mnist"]
    return folders + [DEBIAN_DIR]


def _file(folder: pathlib.Path, name: str) -> pathlib.Path | None:
    """`name` in `folder`, gzip'd as distributed or already unpacked."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def find_files(data_dir: str | None = None) -> dict[str, tuple[pathlib.Path, pathlib.Path]]:
    """split -> (images, labels) paths from the first folder holding all four files, or {}."""
    for folder in search_dirs(data_dir):
        found = {
            split: tuple(_file(folder, name) for name in names) for split, names in FILES.items()
        }
        if all(None not in paths for paths in found.values()):
            return found
    return {}


def read_split(images_path: pathlib.Path, labels_path: pathlib.Path):
    """The (N, 28, 28, 1) uint8 images and (N,) labels of one split, checked."""
    images, labels = idx.read(images_path), idx.read(labels_path)
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE[:2] or images.dtype != np.uint8:
        raise DataError(f"{images_path} holds {images.dtype} {images.shape}, not N 28x28 uint8.")
    if labels.shape != images.shape[:1]:
        raise DataError(
            f"{labels_path} holds {labels.shape[0] if labels.ndim else 0} labels for "
            f"{len(images)} images in {images_path}."
        )
    if labels.size and labels.max() >= len(CLASS_NAMES):
        raise DataError(f"{labels_path} holds label {labels.max()}; Fashion-MNIST has 0-9.")
    return images[..., None], labels.astype(np.int64)


class IdxFashionMnist(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Fashion-MNIST from local IDX files (`idx_files`: split -> (images, labels) paths).

    Not registered, and named apart from the catalog's `fashion_mnist`, so both can live in one
    TFDS data folder. Records keep the files' order (`disable_shuffling`): record i is item i.
    """

    name = "jaxconv_fashion_mnist"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "From the four standard IDX files."}

    def __init__(self, *, idx_files: dict | None = None, **kwargs):
        self.idx_files = idx_files or {}
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        # Raw bytes encoding: a uint8 image is one bytes field, not 784 int64 values.
        image = tfds.features.Tensor(
            shape=IMAGE_SHAPE, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES
        )
        features = {"image": image, "label": tfds.features.Tensor(shape=(), dtype=np.int64)}
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("image", "label"),
            homepage="https://github.com/zalandoresearch/fashion-mnist",
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the files are local
        return {split: self._generate_examples(*paths) for split, paths in self.idx_files.items()}

    def _generate_examples(self, images_path, labels_path):
        images, labels = read_split(images_path, labels_path)
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            yield index, {"image": image, "label": label}


def missing_message(data_dir: str | None, reason: Exception) -> str:
    looked = "\n".join(f"  {folder}" for folder in search_dirs(data_dir))
    names = ", ".join(name for pair in FILES.values() for name in pair)
    return (
        f"dataset 'fashion_mnist' needs the four IDX files ({names}); none of these folders "
        f"holds them:\n{looked}\nand TFDS's catalog copy is not available ({reason}).\n"
        f"Install them with `{INSTALL_COMMAND}`, or put them in a folder and set "
        f"{catalog.DATA_DIR_VARIABLE}=/that/folder (or data.data_dir)."
    )


def _records(split: str, data_dir: str | None):
    """The records of `split`: prepared from local IDX files (once), else TFDS's catalog."""
    builder = IdxFashionMnist(
        idx_files=find_files(data_dir),
        data_dir=catalog.tfds_dir(data_dir),
        file_format="array_record",
    )
    if builder.is_prepared() or builder.idx_files:  # prepared data outlives its files
        builder.download_and_prepare()  # a no-op once prepared
        return builder.as_data_source(split)
    try:
        return catalog.open_records("fashion_mnist", split, data_dir)
    except (ConnectionError, ModuleNotFoundError) as error:
        raise MissingFileError(missing_message(data_dir, error)) from error


def _example(record: dict) -> dict:
    return {"image": record["image"], "label": np.int32(record["label"])}


def load(split: str, data_dir: str | None = None, *, in_memory: bool | None = None):
    """The `split` ('train' or 'test') of Fashion-MNIST; held in memory unless `in_memory` is
    False (47 MB for the training split, read in about 2 s, then faster than records)."""
    source = RecordSource(
        _records(split, data_dir),
        _example,
        num_classes=len(CLASS_NAMES),
        image_shape=IMAGE_SHAPE,
        name=f"fashion_mnist/{split}",
        class_names=CLASS_NAMES,
    )
    if in_memory is None:
        in_memory = fits_in_memory(len(source), IMAGE_SHAPE)
    return to_memory(source) if in_memory else source
