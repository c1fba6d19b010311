"""A user's own folder of images (`data.name='image_folder'`, `data.data_dir=<folder>`).

Classification, one subfolder per class; class ids follow the sorted subfolder names:

    <folder>/train/<class>/*.png|jpg|...
    <folder>/test/<class>/*.png|jpg|...

Segmentation, image/mask pairs with the same file stem (`a.jpg` and `a.png`); a mask is a grey
or palette image whose pixel values are class ids:

    <folder>/train/images/*   <folder>/train/masks/*
    <folder>/test/images/*    <folder>/test/masks/*

Without `train/` and `test/` subfolders, the folder itself holds the classes (or `images/` and
`masks/`) and a fixed 20% of its files, chosen by `numpy.random.default_rng(0)`, is the test
split. Images are decoded once and held in memory, resized to `image_size` when it is set.
"""

import functools
import pathlib

import numpy as np

from jaxconv.data import imaging
from jaxconv.data.source import ArraySource
from jaxconv.errors import DataError, MissingFileError

TEST_FRACTION = 0.2
SPLIT_SEED = 0


def _root(data_dir: str | None) -> pathlib.Path:
    if not data_dir:
        raise DataError(
            "dataset 'image_folder' reads the folder in data.data_dir; set it, e.g. "
            "--config.data.data_dir=/path/to/images (layout: see jaxconv/data/image_folder.py)."
        )
    root = pathlib.Path(data_dir).expanduser()
    if not root.is_dir():
        raise MissingFileError(f"data.data_dir={root} is not a folder.")
    return root


def _has_splits(root: pathlib.Path) -> bool:
    return (root / "train").is_dir() and (root / "test").is_dir()


def _is_segmentation(folder: pathlib.Path) -> bool:
    return (folder / "images").is_dir() and (folder / "masks").is_dir()


def _hold_out(items: list, split: str) -> list:
    """The fixed TEST_FRACTION of `items` for 'test', the rest for 'train', in their order."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(items))
    num_test = int(round(TEST_FRACTION * len(items)))
    chosen = np.sort(order[:num_test] if split == "test" else order[num_test:])
    return [items[i] for i in chosen]


def _subfolders(folder: pathlib.Path) -> tuple[str, ...]:
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name[0] != "."))


def class_names(folder: pathlib.Path) -> tuple[str, ...]:
    """The training folder's class subfolders, sorted: the class ids in order."""
    names = _subfolders(folder)
    if not names:
        raise MissingFileError(f"{folder} holds no class subfolders (one per class).")
    if len(names) == 1:
        raise DataError(
            f"{folder} holds one class folder ('{names[0]}'); a classifier needs two or more, "
            "one subfolder of images per class."
        )
    return names


def classified_files(folder: pathlib.Path, names: tuple[str, ...]) -> list[tuple]:
    """(path, class id) of every image in `folder`'s class subfolders named in `names`."""
    unknown = sorted(set(_subfolders(folder)) - set(names))
    if unknown:
        raise DataError(f"{folder} has classes {unknown} that the training split lacks.")
    return [
        (path, label)
        for label, name in enumerate(names)
        if (folder / name).is_dir()
        for path in imaging.image_files(folder / name)
    ]


def paired_files(folder: pathlib.Path) -> list[tuple]:
    """(image path, mask path) pairs of `folder`/images and `folder`/masks, matched by stem."""
    masks = {path.stem: path for path in imaging.image_files(folder / "masks")}
    images = imaging.image_files(folder / "images")
    unmatched = [path.name for path in images if path.stem not in masks]
    if unmatched:
        raise MissingFileError(
            f"{len(unmatched)} images in {folder / 'images'} have no mask of the same name in "
            f"{folder / 'masks'} (first: {unmatched[0]})."
        )
    return [(path, masks[path.stem]) for path in images]


def _stack_images(paths, image_size, channels) -> np.ndarray:
    images = []
    for path in paths:
        image = imaging.load_image(path, channels)
        if image_size is not None:
            image = imaging.resize_image(image, image_size)
        elif images and image.shape != images[0].shape:
            raise DataError(
                f"{path} is {image.shape[1]}x{image.shape[0]} but {paths[0]} is "
                f"{images[0].shape[1]}x{images[0].shape[0]}; set data.image_size to resize all."
            )
        images.append(image)
    return np.stack(images)


def _stack_masks(paths, image_size, image_shape) -> np.ndarray:
    masks = []
    for path in paths:
        mask = imaging.load_mask(path)
        mask = imaging.resize_mask(mask, image_size or image_shape[:2])
        masks.append(mask)
    return np.stack(masks)


@functools.lru_cache(maxsize=4)
def _read(root: pathlib.Path, split: str, image_size, channels) -> tuple:
    """(images, labels, class names) of one split; cached, as the test split needs the
    training split's classes."""
    folder = root / split if _has_splits(root) else root
    held_out = not _has_splits(root)
    if _is_segmentation(folder):
        pairs = paired_files(folder)
        pairs = _hold_out(pairs, split) if held_out else pairs
        if not pairs:
            raise MissingFileError(f"{folder / 'images'} holds no images for split '{split}'.")
        images = _stack_images([image for image, _ in pairs], image_size, channels)
        return images, _stack_masks([mask for _, mask in pairs], image_size, images.shape[1:]), ()
    names = class_names(root / "train" if _has_splits(root) else root)
    files = classified_files(folder, names)
    files = _hold_out(files, split) if held_out else files
    if not files:
        raise MissingFileError(f"{folder} holds no images for split '{split}'.")
    images = _stack_images([path for path, _ in files], image_size, channels)
    return images, np.array([label for _, label in files], np.int32), names


def _first_image(root: pathlib.Path) -> pathlib.Path:
    folder = root / "train" if _has_splits(root) else root
    candidates = sorted(folder.rglob("*"))
    for path in candidates:
        in_masks = "masks" in path.relative_to(folder).parts
        if path.suffix.lower() in imaging.IMAGE_SUFFIXES and not in_masks:
            return path
    raise MissingFileError(f"{folder} holds no image files ({', '.join(imaging.IMAGE_SUFFIXES)}).")


def load(
    split: str,
    data_dir: str | None = None,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    num_classes: int | None = None,
) -> ArraySource:
    """The `split` of the image folder `data_dir` (layouts: see the module docstring).

    `channels` 1 or 3; by default that of the first training image, so both splits agree.
    `num_classes` of a segmentation folder defaults to the largest class id in the training
    masks plus one.
    """
    root = _root(data_dir)
    if channels is None:
        channels = imaging.load_image(_first_image(root)).shape[-1]
    images, labels, names = _read(root, split, image_size, channels)
    if num_classes is None:
        num_classes = len(names) or int(_read(root, "train", image_size, channels)[1].max()) + 1
    return ArraySource(
        images, labels, num_classes=num_classes, name=f"image_folder/{split}", class_names=names
    )
