"""softshare.data: loaders on real on-disk formats, splits, and batched augmentation."""

import json
import logging
import os
import pathlib

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode

import softshare.checkpoint as checkpoint
from softshare.data import Augment, DataConfig, Split, batches, load_dataset, stratified_split
from tests.conftest_data import (
    CIFAR10_CLASSES,
    cifar_arrays,
    write_cifar10,
    write_cifar100,
    write_image_folder,
)

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _norm(x: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    return (x.float() / 255 - m) / s


def _split(n=64, size=32, seed=0) -> Split:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    return Split(x, torch.arange(n) % 10)


# ----------------------------------------------------------------------------- CIFAR


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


def test_val_split_and_subset_leave_test_untouched(tmp_path):
    write_cifar10(tmp_path, 10, 3)
    full = load_dataset(DataConfig("cifar10", root=str(tmp_path), val_fraction=0.0))
    ds = load_dataset(
        DataConfig("cifar10", root=str(tmp_path), val_fraction=0.2, train_subset=30, split_seed=4)
    )
    assert torch.bincount(ds.val.labels).tolist() == [2] * 10
    assert torch.bincount(ds.train.labels).tolist() == [3] * 10
    assert torch.equal(ds.test.images, full.test.images)
    # train, val are disjoint pieces of the full training set (images are random, so unique)
    rows = {bytes(r) for r in full.train.images.flatten(1).numpy()}
    got = [bytes(r) for r in torch.cat([ds.train.images, ds.val.images]).flatten(1).numpy()]
    assert set(got) <= rows and len(set(got)) == len(got) == 50


def test_train_subset_below_class_count_is_rejected(tmp_path):
    write_cifar10(tmp_path, 3, 1)
    with pytest.raises(ValueError, match="train_subset"):
        load_dataset(DataConfig("cifar10", root=str(tmp_path), train_subset=9))


# ----------------------------------------------------------------------------- image folders


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


# ----------------------------------------------------------------------------- synthetic


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


# ----------------------------------------------------------------------------- splits, config


def test_stratified_split_is_seeded_and_exact():
    sizes = torch.tensor([20, 30, 40, 10, 20, 30, 40, 10, 20, 30])
    labels = torch.arange(10).repeat_interleave(sizes)
    keep, held = stratified_split(labels, 0.1, seed=0)
    keep2, held2 = stratified_split(labels, 0.1, seed=0)
    _, held3 = stratified_split(labels, 0.1, seed=1)
    assert torch.equal(held, held2) and torch.equal(keep, keep2) and not torch.equal(held, held3)
    assert torch.bincount(labels[held]).tolist() == [2, 3, 4, 1, 2, 3, 4, 1, 2, 3]
    assert sorted(torch.cat([keep, held]).tolist()) == list(range(len(labels)))
    assert len(stratified_split(labels, 0.0, 0)[1]) == 0
    # uneven shares: exactly round(fraction * N) held, each class within one of its share
    counts = torch.bincount(labels).double()
    held = stratified_split(labels, 0.37, seed=0)[1]
    assert len(held) == round(0.37 * 250)
    assert ((torch.bincount(labels[held]) - 0.37 * counts).abs() < 1).all()
    with pytest.raises(ValueError, match="fraction"):
        stratified_split(labels, 1.0, 0)


def test_data_config_json_round_trip_and_validation():
    cfg = DataConfig("folder:/tmp/x", root="r", val_fraction=0.9, train_subset=100)
    assert DataConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="bogus"):
        DataConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    for bad in (
        {"val_fraction": 0.91},
        {"val_fraction": -0.01},
        {"train_subset": 0},
        {"image_size": 7},
        {"synthetic_classes": 1},
        {"split_seed": 1.5},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            DataConfig(**bad)
    DataConfig(val_fraction=0.0, train_subset=1, image_size=8, synthetic_classes=2)


@pytest.mark.parametrize("name", ["imagenet", "folder:", "CIFAR10"])
def test_unknown_dataset_lists_accepted_names(name):
    with pytest.raises(ValueError) as e:
        DataConfig(name)
    assert repr(name) in str(e.value)
    assert "cifar10, cifar100, digits, synthetic, folder:PATH" in str(e.value)


# ----------------------------------------------------------------------------- batches


def test_plain_batches_normalise_and_cover_the_split():
    s = _split(50)
    out = list(batches(s, 16, mean=MEAN, std=STD))
    assert [len(y) for _, y in out] == [16, 16, 16, 2]
    assert torch.allclose(torch.cat([x for x, _ in out]), _norm(s.images), atol=1e-5)
    assert len(list(batches(s, 16, mean=MEAN, std=STD, drop_last=True))) == 3
    g = torch.Generator().manual_seed(0)
    shuffled = list(
        batches(
            s,
            16,
            mean=MEAN,
            std=STD,
            generator=g,
            shuffle=True,
            channels_last=True,
            dtype=torch.bfloat16,
        )
    )
    x, y = shuffled[0]
    assert x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last)
    assert y.dtype == torch.int64
    assert sorted(torch.cat([y for _, y in shuffled]).tolist()) == sorted(s.labels.tolist())


def test_crop_is_a_window_of_the_zero_padded_image():
    s = _split(32)
    g = torch.Generator().manual_seed(1)
    ((x, _),) = batches(s, 32, mean=MEAN, std=STD, generator=g, augment=Augment(4, False, 0))
    assert x.shape == (32, 3, 32, 32) and x.dtype == torch.float32
    padded = _norm(torch.nn.functional.pad(s.images, (4, 4, 4, 4)))
    shifts = set()
    for i in range(32):
        match = [
            (dy, dx)
            for dy in range(9)
            for dx in range(9)
            if torch.allclose(x[i], padded[i, :, dy : dy + 32, dx : dx + 32], atol=1e-5)
        ]
        assert len(match) == 1
        shifts.add(match[0])
    assert len(shifts) > 10  # shifts really vary
    lo, hi = _norm(torch.zeros(1, 3, 1, 1)), _norm(torch.full((1, 3, 1, 1), 255))
    assert (x >= lo - 1e-5).all() and (x <= hi + 1e-5).all()


def test_flip_alone_flips_about_half():
    s = _split(64)
    g = torch.Generator().manual_seed(2)
    ((x, _),) = batches(s, 64, mean=MEAN, std=STD, generator=g, augment=Augment(0, True, 0))
    ref = _norm(s.images)
    same = [torch.allclose(x[i], ref[i], atol=1e-5) for i in range(64)]
    flipped = [torch.allclose(x[i], ref[i].flip(-1), atol=1e-5) for i in range(64)]
    assert all(a != b for a, b in zip(same, flipped))  # each image is exactly one of the two
    assert 16 < sum(flipped) < 48


def test_cutout_zeroes_one_clipped_square():
    s = Split(torch.full((200, 3, 20, 20), 255, dtype=torch.uint8), torch.zeros(200).long())
    g = torch.Generator().manual_seed(3)
    ((x, _),) = batches(
        s, 200, mean=(0, 0, 0), std=(1, 1, 1), generator=g, augment=Augment(0, False, 8)
    )
    assert set(x.unique().tolist()) == {0.0, 1.0}
    full = 0
    for img in x:
        hole = img[0] == 0
        assert torch.equal(hole, img[1] == 0) and torch.equal(hole, img[2] == 0)
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert h * w == hole.sum() and 4 <= h <= 8 and 4 <= w <= 8  # a solid rectangle
        assert h == 8 or rows[0] == 0 or rows[-1] == 19  # smaller only where clipped
        assert w == 8 or cols[0] == 0 or cols[-1] == 19
        full += h * w == 64
    assert full > 50


def test_batches_replay_from_generator_state():
    s = _split(40)
    aug = Augment(4, True, 16)

    def epoch(g):
        return list(
            batches(
                s, 16, mean=MEAN, std=STD, generator=g, augment=aug, shuffle=True, drop_last=True
            )
        )

    first = epoch(torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, epoch(g)))
    state = g.get_state()
    second = epoch(g)
    assert not torch.equal(second[0][0], first[0][0])
    g.set_state(state)
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(second, epoch(g))
    )


def test_randomness_needs_a_cpu_generator():
    with pytest.raises(ValueError, match="generator"):
        next(batches(_split(4), 2, mean=MEAN, std=STD, shuffle=True))
    ds = load_dataset(
        DataConfig("synthetic", synthetic_train=20, synthetic_test=5, val_fraction=0.5)
    )
    moved = ds.to("meta")
    assert moved.train.images.is_meta and moved.val.labels.is_meta and not ds.test.images.is_meta


class _HostToDevice(TorchDispatchMode):
    """Counts copies from the CPU to another device (the meta device stands in for CUDA)."""

    def __init__(self) -> None:
        super().__init__()
        self.copies = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if func is torch.ops.aten._to_copy.default and tensors[0].device.type == "cpu":
            self.copies += out.device.type != "cpu"
        elif func is torch.ops.aten.copy_.default and tensors[1].device.type == "cpu":
            self.copies += tensors[0].device.type != "cpu"
        return out


def test_an_epoch_copies_its_randomness_to_the_device_once():
    """A blocking host-to-device copy is a host sync on CUDA: the epoch makes a fixed number of
    copies (draws, normalisation constants), however many batches it has."""
    s = _split(64, size=16).to("meta")
    counts = []
    for batch in (32, 8):
        g = torch.Generator().manual_seed(0)
        with _HostToDevice() as mode:
            out = list(
                batches(
                    s, batch, mean=MEAN, std=STD, generator=g, augment=Augment(4, True, 8),
                    shuffle=True, drop_last=True, channels_last=True,
                )
            )  # fmt: skip
        assert len(out) == 64 // batch and out[0][0].is_meta
        counts.append(mode.copies)
    assert counts[0] == counts[1] <= 2, counts


def test_the_whole_epoch_is_drawn_with_the_first_batch():
    """The generator has moved past the whole epoch once the first batch is out, and the
    batches do not depend on how many of them a step asks for: their draws are fixed."""
    s = _split(40)
    aug = Augment(4, True, 16)
    g = torch.Generator().manual_seed(5)
    epoch = batches(s, 8, mean=MEAN, std=STD, generator=g, augment=aug, shuffle=True)
    first = next(epoch)
    after_first = g.get_state()
    rest = list(epoch)
    assert torch.equal(g.get_state(), after_first) and len(rest) == 4
    again = list(
        batches(
            s, 8, mean=MEAN, std=STD, generator=torch.Generator().manual_seed(5), augment=aug,
            shuffle=True,
        )
    )  # fmt: skip
    assert all(torch.equal(a[0], b[0]) for a, b in zip([first, *rest], again))


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
