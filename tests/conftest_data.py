"""Tiny datasets written in the real on-disk formats, for tests of softshare.data.

- write_cifar10 / write_cifar100: the "python version" folders that torchvision downloads
  (cifar-10-batches-py, cifar-100-python), pickled as the originals are (protocol 2, bytes keys,
  "data" N x 3072 uint8 channel-major RGB). Pixels come from cifar_arrays, so a test can rebuild
  what was written.
- write_image_folder: PATH/{train,test}/<class>/NNNN.png (lossless PNG, so pixels round-trip).
"""

from __future__ import annotations

import os
import pickle

import numpy as np
from PIL import Image

CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def cifar_arrays(
    num_classes: int, n_train_per_class: int, n_test_per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, test_x, test_y): x uint8 (N, 3072), y int lists as arrays, shuffled."""
    rng = np.random.default_rng(seed)
    out = []
    for per_class in (n_train_per_class, n_test_per_class):
        y = rng.permutation(np.repeat(np.arange(num_classes), per_class))
        x = rng.integers(0, 256, size=(len(y), 3072), dtype=np.uint8)
        out += [x, y]
    return out[0], out[1], out[2], out[3]


def _dump(path: str, obj: dict, str_keys: bool) -> None:
    def key(k: str):
        return k if str_keys else k.encode()

    with open(path, "wb") as f:
        pickle.dump({key(k): v for k, v in obj.items()}, f, protocol=2)


def write_cifar10(
    root,
    n_train_per_class: int = 5,
    n_test_per_class: int = 2,
    seed: int = 0,
    *,
    str_keys: bool = False,
) -> str:
    """Write ROOT/cifar-10-batches-py; returns that folder. Training images are spread over
    data_batch_1..5 in order. str_keys=True writes str keys, as re-made copies have."""
    out = os.path.join(str(root), "cifar-10-batches-py")
    os.makedirs(out, exist_ok=True)
    train_x, train_y, test_x, test_y = cifar_arrays(10, n_train_per_class, n_test_per_class, seed)
    for b, idx in enumerate(np.array_split(np.arange(len(train_y)), 5)):
        _dump(
            os.path.join(out, f"data_batch_{b + 1}"),
            {
                "batch_label": b"training batch",
                "data": train_x[idx],
                "labels": train_y[idx].tolist(),
            },
            str_keys,
        )
    _dump(
        os.path.join(out, "test_batch"),
        {"batch_label": b"testing batch 1 of 1", "data": test_x, "labels": test_y.tolist()},
        str_keys,
    )
    names = CIFAR10_CLASSES if str_keys else [c.encode() for c in CIFAR10_CLASSES]
    _dump(
        os.path.join(out, "batches.meta"),
        {"label_names": names, "num_cases_per_batch": len(train_y) // 5, "num_vis": 3072},
        str_keys,
    )
    return out


def write_cifar100(
    root, n_train_per_class: int = 2, n_test_per_class: int = 1, seed: int = 0
) -> str:
    """Write ROOT/cifar-100-python/{train,test,meta}; returns that folder."""
    out = os.path.join(str(root), "cifar-100-python")
    os.makedirs(out, exist_ok=True)
    train_x, train_y, test_x, test_y = cifar_arrays(100, n_train_per_class, n_test_per_class, seed)
    for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        _dump(
            os.path.join(out, name),
            {
                "filenames": [b"x.png"] * len(y),
                "batch_label": name.encode(),
                "data": x,
                "fine_labels": y.tolist(),
                "coarse_labels": (y // 5).tolist(),
            },
            False,
        )
    _dump(
        os.path.join(out, "meta"),
        {
            "fine_label_names": [f"fine{i}".encode() for i in range(100)],
            "coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
        },
        False,
    )
    return out


def write_image_folder(
    root,
    classes: list[str],
    n_per_class: int | tuple[int, int] = 3,
    size: int | tuple[int, int] = 32,
    seed: int = 0,
) -> str:
    """Write ROOT/{train,test}/<class>/NNNN.png of random RGB pixels; returns ROOT.

    n_per_class: images per class in both splits, or (train, test). size: side or (width,
    height) in pixels.
    """
    n_train, n_test = (n_per_class, n_per_class) if isinstance(n_per_class, int) else n_per_class
    w, h = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for c in classes:
            d = os.path.join(str(root), split, c)
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(os.path.join(d, f"{i:04d}.png"))
    return str(root)
