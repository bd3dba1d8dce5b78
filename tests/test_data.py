"""softshare.data: splits, the config, and batched augmentation (the on-disk readers:
tests/test_sources.py)."""

import json

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from softshare.data import Augment, DataConfig, Split, batches, load_dataset, stratified_split
from tests.conftest_data import (
    write_cifar10,
)

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _norm(x: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    return (x.float() / 255 - m) / s


def _split(n=64, size=32, seed=0) -> Split:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    return Split(x, torch.arange(n) % 10)


# ----------------------------------------------------------------------------- splits, config


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
