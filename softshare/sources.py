"""Where datasets come from: CIFAR's "python version" pickles, image folders, generated images.

Each reader (``load_cifar``, ``load_folder``, ``load_digits``, ``load_synthetic``) returns uint8
:class:`Split` tensors on the CPU; :func:`softshare.data.load_dataset` picks one.

Design: docs/design.md#softsharesources
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import atomic_write

__all__ = ["CIFAR", "Split", "load_cifar", "load_folder", "load_synthetic"]

logger = logging.getLogger(__name__)

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")
_CACHE_VERSION = 1
# name, folder, training files, test file, meta file, label key, class-name key
CIFAR = {
    "cifar10": (
        "CIFAR-10",
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        "test_batch",
        "batches.meta",
        "labels",
        "label_names",
    ),
    "cifar100": (
        "CIFAR-100",
        "cifar-100-python",
        ["train"],
        "test",
        "meta",
        "fine_labels",
        "fine_label_names",
    ),
}


@dataclass
class Split:
    """images: uint8 (N, C, H, W), pixel values 0..255; labels: int64 (N,), 0..classes-1."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))

    def subset(self, idx: torch.Tensor) -> "Split":
        # index_select: about 2x faster than images[idx] for uint8 on the CPU (measured)
        return Split(self.images.index_select(0, idx), self.labels.index_select(0, idx))


# ----------------------------------------------------------------------------- CIFAR


def _unpickle(path: str) -> dict[str, Any]:
    """A CIFAR pickle with keys as str (Python-2 pickles have bytes keys, re-made ones str)."""
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError, UnicodeDecodeError) as exc:  # fmt: skip
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(
            f"{path}: not a readable CIFAR pickle (damaged or cut off: {reason}); "
            f"extract the dataset again"
        ) from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: not a CIFAR pickle (holds a {type(d).__name__}, not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def _cifar_dir(kind: str, root: str, download: bool) -> str:
    title, folder, train_files = CIFAR[kind][:3]
    for cand in (os.path.join(root, folder), root):
        if os.path.isfile(os.path.join(cand, train_files[0])):
            return cand
    if download:
        import torchvision  # only for the download; we read the pickles ourselves

        cls = torchvision.datasets.CIFAR10 if kind == "cifar10" else torchvision.datasets.CIFAR100
        logger.info("downloading %s into %s", title, root)
        cls(root, train=True, download=True)
        return os.path.join(root, folder)
    raise FileNotFoundError(
        f"{title} not found: no {folder} in {os.path.abspath(root)}; pass --download (needs "
        f"internet) or --data DIR pointing at a folder that holds {folder}"
    )


def _read_cifar_file(path: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CIFAR folder incomplete: {path} is missing")
    d = _unpickle(path)
    if "data" not in d or label_key not in d:
        raise ValueError(f"{path}: not a CIFAR batch (has keys {sorted(d)})")
    x = np.asarray(d["data"], dtype=np.uint8)
    y = np.asarray(d[label_key], dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
        raise ValueError(
            f"{path}: expected data N x 3072 and N labels, got data {x.shape} and {len(y)} labels"
        )
    return x, y


def load_cifar(kind: str, root: str, download: bool) -> tuple[Split, Split, list[str]]:
    _, _, train_files, test_file, meta_file, label_key, names_key = CIFAR[kind]
    folder = _cifar_dir(kind, root, download)
    parts = [_read_cifar_file(os.path.join(folder, f), label_key) for f in train_files]
    test_x, test_y = _read_cifar_file(os.path.join(folder, test_file), label_key)
    n_classes = 10 if kind == "cifar10" else 100
    meta_path = os.path.join(folder, meta_file)
    if os.path.isfile(meta_path):
        classes = [
            n.decode() if isinstance(n, bytes) else n for n in _unpickle(meta_path)[names_key]
        ]
    else:
        classes = [str(i) for i in range(n_classes)]

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"{folder}: labels outside [0, {n_classes - 1}]")
        return Split(torch.from_numpy(x.reshape(-1, 3, 32, 32)), torch.from_numpy(y))

    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    return split(train_x, train_y), split(test_x, test_y), classes


# ----------------------------------------------------------------------------- image folders


def _image_entries(d: str) -> list[os.DirEntry]:
    return sorted(
        (
            e
            for e in os.scandir(d)
            if e.is_file()
            and not e.name.startswith(".")
            and e.name.lower().endswith(_IMAGE_EXTENSIONS)
        ),
        key=lambda e: e.name,
    )


def _list_images(path: str, size: int) -> tuple[list[str], dict[str, list[tuple[str, int]]], str]:
    """Classes (sorted train subfolders), per split the (file, class index) pairs, and a
    fingerprint: a hash of the size and every file's relative path, label, bytes and mtime."""
    if not all(os.path.isdir(os.path.join(path, s)) for s in ("train", "test")):
        raise FileNotFoundError(
            f"image folder not found: no train/ and test/ in {os.path.abspath(path)}; expected "
            f"{path}/train/<class>/* and {path}/test/<class>/*"
        )

    def subdirs(d: str) -> list[str]:
        return sorted(e.name for e in os.scandir(d) if e.is_dir() and not e.name.startswith("."))

    classes = subdirs(os.path.join(path, "train"))
    test_classes = subdirs(os.path.join(path, "test"))
    if classes != test_classes:
        raise ValueError(
            f"image folder {path}: test classes differ from train: missing in test "
            f"{sorted(set(classes) - set(test_classes))}, extra in test "
            f"{sorted(set(test_classes) - set(classes))}"
        )
    h = hashlib.sha256(f"v{_CACHE_VERSION} size={size}".encode())
    files: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    for split, i in ((s, i) for s in files for i in range(len(classes))):
        entries = _image_entries(os.path.join(path, split, classes[i]))
        if not entries:
            raise ValueError(f"image folder {path}: no images in {split}/{classes[i]}")
        for e in entries:
            st = e.stat()
            h.update(f"{split}/{classes[i]}/{e.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        files[split] += [(e.path, i) for e in entries]
    return classes, files, h.hexdigest()


def _decode(items: list[tuple[str, int]], size: int) -> Split:
    from PIL import Image

    x = np.empty((len(items), 3, size, size), dtype=np.uint8)
    for k, (p, _) in enumerate(items):
        with Image.open(p) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BILINEAR)
            x[k] = np.asarray(im).transpose(2, 0, 1)
    return Split(torch.from_numpy(x), torch.tensor([c for _, c in items], dtype=torch.int64))


def _save_atomic(obj: dict[str, Any], path: str) -> None:
    """Write the cache atomically, readable by the dataset folder's users; a folder we may not
    write to (read-only data) means working without the cache."""
    try:
        atomic_write(path, lambda handle: torch.save(obj, handle), shared=True)
    except OSError as e:
        logger.warning("cannot write image cache %s (%s); continuing without it", path, e)


def load_folder(path: str, size: int) -> tuple[Split, Split, list[str]]:
    """Decode PATH/{train,test}/<class>/* once; later calls read PATH/.softshare-cache-SIZE.pt."""
    classes, files, fingerprint = _list_images(path, size)
    cache = os.path.join(path, f".softshare-cache-{size}.pt")
    if os.path.isfile(cache):
        try:
            c = torch.load(cache, weights_only=True)
            if c.get("fingerprint") == fingerprint:
                logger.info("image folder %s: using cache %s", path, cache)
                return (
                    Split(c["train_images"], c["train_labels"]),
                    Split(c["test_images"], c["test_labels"]),
                    list(c["classes"]),
                )
        except Exception as e:  # a damaged cache is rebuilt, never fatal
            logger.warning("ignoring unreadable cache %s (%s)", cache, e)
    train, test = _decode(files["train"], size), _decode(files["test"], size)
    _save_atomic(
        {
            "fingerprint": fingerprint,
            "classes": classes,
            "train_images": train.images,
            "train_labels": train.labels,
            "test_images": test.images,
            "test_labels": test.labels,
        },
        cache,
    )
    return train, test, classes


# ----------------------------------------------------------------------------- synthetic


def _synthetic_split(patterns: torch.Tensor, n: int, seed: int) -> Split:
    """n images: class pattern + Gaussian noise (std 64 of 255), classes balanced, shuffled."""
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % len(patterns))[torch.randperm(n, generator=g)]
    images = torch.empty((n, *patterns.shape[1:]), dtype=torch.uint8)
    for s in range(0, n, 4096):  # chunks bound the float32 working memory
        y = labels[s : s + 4096]
        noise = torch.randn((len(y), *patterns.shape[1:]), generator=g) * 64.0
        images[s : s + 4096] = (patterns[y] + noise).round().clamp(0, 255).to(torch.uint8)
    return Split(images, labels)


def load_digits(size: int) -> tuple[Split, list[str]]:
    """scikit-learn's handwritten digits (1,797 8x8 grey images of 0-9, shipped inside the
    package: no download), scaled from 0-16 to 0-255 and upsampled bilinearly to ``size``."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ValueError(
            "dataset digits needs scikit-learn (pip install scikit-learn); or use cifar10, "
            "cifar100, synthetic or folder:PATH"
        ) from None
    digits = sklearn_digits()
    pixels = torch.from_numpy(digits.images).float()[:, None] * (255.0 / 16.0)  # (N, 1, 8, 8)
    pixels = F.interpolate(pixels, size=(size,) * 2, mode="bilinear", align_corners=False)
    images = pixels.round().clamp(0, 255).to(torch.uint8)
    labels = torch.from_numpy(digits.target).long()
    return Split(images, labels), [str(c) for c in digits.target_names]


def load_synthetic(
    classes: int, n_train: int, n_test: int, size: int, seed: int
) -> tuple[Split, Split, list[str]]:
    """Each class is a smooth random colour pattern (4x4 random colours upsampled bilinearly)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((classes, 3, 4, 4), generator=g) * 255.0
    patterns = F.interpolate(coarse, size=(size,) * 2, mode="bilinear", align_corners=False)
    train = _synthetic_split(patterns, n_train, seed * 2 + 1)
    test = _synthetic_split(patterns, n_test, seed * 2 + 2)
    return train, test, [f"class{i}" for i in range(classes)]
