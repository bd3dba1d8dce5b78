"""softshare.sources: the readers of the real on-disk formats (CIFAR pickles, image folders),
the bundled digits and generated images, through load_dataset."""

import logging
import os
import pathlib

import numpy as np
import pytest
import torch
from PIL import Image

import softshare.checkpoint as checkpoint
from softshare.data import DataConfig, load_dataset
from tests.conftest_data import (
    CIFAR10_CLASSES,
    cifar_arrays,
    write_cifar10,
    write_cifar100,
    write_image_folder,
)


@pytest.mark.parametrize("str_keys", [False, True])
def test_cifar10_pickles_round_trip(tmp_path, str_keys):
    write_cifar10(tmp_path, 6, 3, seed=1, str_keys=str_keys)
    ds = load_dataset(DataConfig("cifar10", root=str(tmp_path), val_fraction=0.0))
    train_x, train_y, test_x, test_y = cifar_arrays(10, 6, 3, seed=1)
    assert ds.train.images.shape == (60, 3, 32, 32) and ds.train.images.dtype == torch.uint8
    assert ds.test.images.shape == (30, 3, 32, 32) and ds.val is None
    assert torch.equal(ds.train.images, torch.from_numpy(train_x).view(-1, 3, 32, 32))
    assert ds.train.labels.tolist() == train_y.tolist() and ds.train.labels.dtype == torch.int64
    assert torch.equal(ds.test.images.flatten(1), torch.from_numpy(test_x))
    assert ds.test.labels.tolist() == test_y.tolist()
    assert ds.classes == CIFAR10_CLASSES and ds.num_classes == 10
    assert ds.mean == pytest.approx((125.3 / 255, 123.0 / 255, 113.9 / 255))


def test_cifar10_root_may_be_the_batches_folder_itself(tmp_path):
    folder = write_cifar10(tmp_path, 2, 1)
    ds = load_dataset(DataConfig("cifar10", root=folder, val_fraction=0.0))
    assert len(ds.train) == 20 and len(ds.test) == 10


def test_cifar100_pickles_round_trip(tmp_path):
    write_cifar100(tmp_path, 2, 1, seed=3)
    ds = load_dataset(DataConfig("cifar100", root=str(tmp_path), val_fraction=0.0))
    train_x, train_y, test_x, test_y = cifar_arrays(100, 2, 1, seed=3)
    assert ds.train.images.shape == (200, 3, 32, 32) and ds.test.images.shape == (100, 3, 32, 32)
    assert torch.equal(ds.train.images.flatten(1), torch.from_numpy(train_x))
    assert ds.train.labels.tolist() == train_y.tolist()
    assert torch.equal(ds.test.images.flatten(1), torch.from_numpy(test_x))
    assert ds.num_classes == 100 and ds.classes[7] == "fine7"
    assert ds.std == pytest.approx((68.2 / 255, 65.4 / 255, 70.4 / 255))


@pytest.mark.parametrize(
    "name,folder", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")]
)
def test_missing_cifar_says_where_and_how_out(tmp_path, name, folder):
    root = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as e:
        load_dataset(DataConfig(name, root=str(root)))
    msg = str(e.value)
    assert "\n" not in msg and str(root) in msg and folder in msg
    assert "--download" in msg and "--data" in msg


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: b"this is not a pickle at all",  # bytes that are not a pickle
        lambda raw: raw[: len(raw) // 2],  # cut off (a copy interrupted)
        lambda raw: b"",  # empty
    ],
    ids=["foreign", "cut-off", "empty"],
)
def test_a_damaged_cifar_file_is_named_in_one_line(tmp_path, damage):
    folder = write_cifar10(tmp_path, 4, 2)
    victim = pathlib.Path(folder) / "data_batch_3"
    victim.write_bytes(damage(victim.read_bytes()))
    with pytest.raises(ValueError) as e:
        load_dataset(DataConfig("cifar10", root=str(tmp_path)))
    msg = str(e.value)
    assert "\n" not in msg and str(victim) in msg and "extract the dataset again" in msg


def test_image_folder_loads_exact_pixels_and_reuses_cache(tmp_path):
    root = write_image_folder(tmp_path / "imgs", ["b_cat", "a_dog"], (3, 2), size=32)
    cfg = DataConfig(f"folder:{root}", val_fraction=0.0)
    ds = load_dataset(cfg)
    assert ds.classes == ["a_dog", "b_cat"] and ds.train.images.shape == (6, 3, 32, 32)
    png = os.path.join(root, "train", "b_cat", "0001.png")
    expected = torch.from_numpy(np.array(Image.open(png))).permute(2, 0, 1)
    assert torch.equal(ds.train.images[4], expected)
    assert ds.train.labels.tolist() == [0] * 3 + [1] * 3
    cache = os.path.join(root, ".softshare-cache-32.pt")
    assert os.path.isfile(cache)
    # overwrite a file's pixels but keep its size and mtime: a cached load must not notice
    st = os.stat(png)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(png, compress_level=0)
    with open(png, "r+b") as f:
        f.truncate(st.st_size)
    os.utime(png, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert torch.equal(load_dataset(cfg).train.images[4], expected)
    # a new file changes the fingerprint: the cache is rebuilt
    new = os.path.join(root, "train", "a_dog", "x.png")
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(new)
    again = load_dataset(cfg)
    assert len(again.train) == 7 and (again.train.images[3] == 7).all()


def test_image_folder_resizes_and_computes_stats(tmp_path):
    root = write_image_folder(tmp_path, ["x", "y", "z"], 2, size=(48, 40))
    ds = load_dataset(DataConfig(f"folder:{root}", image_size=16, val_fraction=0.0))
    assert ds.train.images.shape == (6, 3, 16, 16) and ds.test.images.shape == (6, 3, 16, 16)
    assert os.path.isfile(os.path.join(root, ".softshare-cache-16.pt"))
    x = ds.train.images.double() / 255
    assert ds.mean == pytest.approx(x.mean(dim=(0, 2, 3)).tolist())
    std = x.permute(1, 0, 2, 3).flatten(1).std(1, unbiased=False)
    assert ds.std == pytest.approx(std.tolist())


def test_image_folder_class_mismatch_names_the_classes(tmp_path):
    root = write_image_folder(tmp_path, ["cat", "dog"], 1)
    os.rename(os.path.join(root, "test", "dog"), os.path.join(root, "test", "emu"))
    with pytest.raises(ValueError, match=r"missing in test \['dog'\].*extra in test \['emu'\]"):
        load_dataset(DataConfig(f"folder:{root}"))


def test_image_folder_unwritable_cache_only_warns(tmp_path, monkeypatch, caplog):
    root = write_image_folder(tmp_path, ["a", "b"], 2)

    def refuse(*args, **kwargs):
        raise PermissionError("read-only")

    monkeypatch.setattr(checkpoint.tempfile, "mkstemp", refuse)  # the one atomic writer
    with caplog.at_level(logging.WARNING, logger="softshare.sources"):
        ds = load_dataset(DataConfig(f"folder:{root}", val_fraction=0.0))
    assert len(ds.train) == 4 and "cannot write image cache" in caplog.text
    assert not any(n.startswith(".softshare") for n in os.listdir(root))


def test_missing_image_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="train/"):
        load_dataset(DataConfig(f"folder:{tmp_path / 'none'}"))


def test_synthetic_is_seeded_and_learnable():
    cfg = DataConfig(
        "synthetic",
        synthetic_classes=4,
        synthetic_train=400,
        synthetic_test=200,
        image_size=12,
        val_fraction=0.0,
        synthetic_seed=5,
    )
    a, b = load_dataset(cfg), load_dataset(cfg)
    other = load_dataset(DataConfig.from_dict({**cfg.to_dict(), "synthetic_seed": 6}))
    assert a.train.images.shape == (400, 3, 12, 12) and a.num_classes == 4
    assert torch.equal(a.train.images, b.train.images) and torch.equal(
        a.test.labels, b.test.labels
    )
    assert not torch.equal(a.train.images, other.train.images)
    assert torch.bincount(a.train.labels).tolist() == [100] * 4
    # nearest class mean, fitted on train, classifies test well: the class signal is real
    x = a.train.images.flatten(1).float()
    means = torch.stack([x[a.train.labels == c].mean(0) for c in range(4)])
    pred = torch.cdist(a.test.images.flatten(1).float(), means).argmin(1)
    assert (pred == a.test.labels).float().mean() > 0.9
    assert torch.cdist(means, means).fill_diagonal_(1e9).min() > 100


def test_digits_are_the_real_bundled_images_with_a_test_set_that_never_moves():
    from sklearn.datasets import load_digits

    a = load_dataset(DataConfig(dataset="digits", image_size=8, val_fraction=0.25))
    b = load_dataset(DataConfig(dataset="digits", image_size=8, val_fraction=0.25, split_seed=3))
    assert (len(a.train), len(a.val), len(a.test)) == (1078, 360, 359)
    assert a.num_classes == 10 and a.train.images.shape[1:] == (1, 8, 8)
    assert torch.equal(a.test.images, b.test.images)  # the split seed moves train/val only
    assert not torch.equal(a.val.images, b.val.images)
    # at 8x8 the pixels are scikit-learn's, 0-16 scaled to 0-255, labels as given
    raw = load_digits()
    scaled = np.round(raw.images * (255 / 16)).astype(np.uint8)
    every = torch.cat([a.train.images, a.val.images, a.test.images])[:, 0].numpy()
    assert sorted(map(bytes, every)) == sorted(map(bytes, scaled))
    big = load_dataset(DataConfig(dataset="digits", image_size=16, val_fraction=0.25))
    assert big.train.images.shape[1:] == (1, 16, 16)
