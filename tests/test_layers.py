import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from softshare import SConv2d, TemplateBank, count_parameters, parameter_groups
from softshare.layers import init_coefficients_orthogonal


def test_one_hot_coefficients_equal_plain_conv_with_that_template():
    torch.manual_seed(0)
    bank = TemplateBank(3, 4, 5, 3)
    conv = SConv2d(bank, stride=2, padding=1)
    x = torch.randn(2, 4, 9, 9)
    for j in range(3):
        with torch.no_grad():
            conv.coefficients.zero_()
            conv.coefficients[j] = 1.0
        expected = F.conv2d(x, bank.templates[j], stride=2, padding=1)
        assert torch.equal(conv(x), expected)


def test_mixed_kernel_is_linear_combination():
    bank = TemplateBank(4, 2, 3, 3)
    conv = SConv2d(bank)
    expected = sum(conv.coefficients[j] * bank.templates[j] for j in range(4))
    assert torch.allclose(conv.weight, expected, atol=1e-6)


def test_gradients_reach_templates_and_coefficients():
    bank = TemplateBank(2, 3, 3, 3)
    a, b = SConv2d(bank), SConv2d(bank)
    out = b(a(torch.randn(2, 3, 8, 8))).square().mean()
    out.backward()
    assert bank.templates.grad is not None and bank.templates.grad.abs().sum() > 0
    assert a.coefficients.grad.abs().sum() > 0 and b.coefficients.grad.abs().sum() > 0


def test_templates_initialised_independently_like_kaiming_fan_in():
    torch.manual_seed(0)
    bank = TemplateBank(4, 64, 64, 3)
    fan_in = 64 * 9
    for template in bank.templates:
        assert abs(template.std().item() - (2.0 / fan_in) ** 0.5) < 0.01
    assert not torch.allclose(bank.templates[0], bank.templates[1])


def test_shared_bank_counts_once():
    bank = TemplateBank(2, 8, 8, 3)
    model = nn.Sequential(SConv2d(bank), nn.ReLU(), SConv2d(bank), nn.ReLU(), SConv2d(bank))
    assert count_parameters(model) == 2 * 8 * 8 * 9 + 3 * 2


@pytest.mark.parametrize("layers,templates", [(3, 3), (2, 5), (4, 2)])
def test_orthogonal_coefficient_init(layers, templates):
    bank = TemplateBank(templates, 2, 2, 3)
    convs = [SConv2d(bank) for _ in range(layers)]
    init_coefficients_orthogonal(convs)
    m = torch.stack([c.coefficients.detach() for c in convs])
    if templates >= layers:  # rows orthonormal
        assert torch.allclose(m @ m.T, torch.eye(layers), atol=1e-5)
    else:  # columns orthonormal
        assert torch.allclose(m.T @ m, torch.eye(templates), atol=1e-5)


def test_parameter_groups_exclude_coefficients_from_decay():
    bank = TemplateBank(2, 3, 3, 3)
    model = nn.Sequential(nn.Conv2d(3, 3, 3), SConv2d(bank), SConv2d(bank))
    groups = parameter_groups(model, 5e-4)
    decay_ids = {id(p) for p in groups[0]["params"]}
    no_decay_ids = {id(p) for p in groups[1]["params"]}
    assert groups[1]["weight_decay"] == 0.0 and groups[0]["weight_decay"] == 5e-4
    assert no_decay_ids == {id(model[1].coefficients), id(model[2].coefficients)}
    assert id(bank.templates) in decay_ids and id(model[0].weight) in decay_ids
    assert len(decay_ids) + len(no_decay_ids) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="weight_decay"):
        parameter_groups(model, -1.0)


@pytest.mark.parametrize(
    "kwargs", [dict(num_templates=0), dict(in_channels=0), dict(kernel_size=-1)]
)
def test_bank_rejects_bad_sizes(kwargs):
    args = dict(num_templates=2, in_channels=3, out_channels=3, kernel_size=3) | kwargs
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        TemplateBank(**args)


def test_repr_shows_templates_and_share():
    text = repr(SConv2d(TemplateBank(2, 4, 8, 3)))
    assert "templates=2x(8, 4, 3, 3)" in text and "coefficients=2" in text


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.conv3 = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return self.head(x.mean((2, 3)))


@pytest.mark.slow
def test_plug_and_play_cnn_trains_and_state_dict_round_trips():
    torch.manual_seed(0)
    model = SmallCNN()
    bank = TemplateBank(2, 16, 16, 3)
    model.conv2 = SConv2d(bank, stride=1, padding=1)
    model.conv3 = SConv2d(bank, stride=2, padding=1)
    y = torch.arange(64) % 2
    x = torch.randn(64, 3, 8, 8)
    x[:, 0] += (2.0 * y - 1.0)[:, None, None]  # a learnable signal on the first channel
    opt = torch.optim.SGD(parameter_groups(model, 1e-4), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]

    fresh = SmallCNN()
    fresh_bank = TemplateBank(2, 16, 16, 3)
    fresh.conv2, fresh.conv3 = SConv2d(fresh_bank), SConv2d(fresh_bank, stride=2)
    fresh.load_state_dict(copy.deepcopy(model.state_dict()))
    assert torch.equal(fresh(x), model(x))
    assert fresh.conv2.bank is fresh.conv3.bank  # still shared after loading
