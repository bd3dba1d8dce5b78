"""softshare.inherit: a sharing plan started from a trained parent by a per-group SVD fit."""

import math

import pytest
import torch

from softshare import build_model, count_parameters, inherit, parse_plan, shared_groups
from softshare.models import SWRN


def _trained_like(plan: str, classes: int = 10, seed: int = 0) -> SWRN:
    """A parent whose weights and BN statistics are all non-trivial (as after training)."""
    torch.manual_seed(seed)
    model = build_model(plan, num_classes=classes)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return model.eval()


def _outputs_match(a, b, x) -> float:
    with torch.no_grad():
        ya, yb = a(x), b(x)
    return float((ya - yb).abs().max() / ya.abs().max())


@pytest.mark.parametrize(
    "parent_plan,plan",
    [
        ("WRN-16-2", "16-2:2x2/2x3/1x1,1x1"),  # plain parent, every bank T >= L
        ("SWRN-16-2-1", "16-2:1,1/2x2/1x1,1"),  # shared parent: its mixed kernels
        ("WRN-22-1", "22-1:4x4/2x2,2x3/1,3x3"),  # depth 22: 4-layer groups
    ],
)
def test_inherit_is_exact_when_every_bank_has_as_many_templates_as_layers(parent_plan, plan):
    parent = _trained_like(parent_plan)
    child = inherit(parent, plan, generator=torch.Generator().manual_seed(1))
    assert child.config.plan == parse_plan(plan).text and not child.training
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    assert _outputs_match(parent, child, x) < 1e-5
    assert all(e["relative_error"] < 1e-6 for e in child.projection_errors)
    # spare templates (T > L) are live kernels with zero coefficients: both can still learn
    for bank, layers in shared_groups(child):
        if bank.num_templates > len(layers):
            assert bank.templates[len(layers) :].abs().sum() > 0


def test_inherit_with_fewer_templates_is_the_reference_svd_fit():
    parent = _trained_like("WRN-16-2", seed=3)
    child = inherit(parent, "SWRN-16-2-1")  # each stage: 2 layers, 1 template
    assert len(child.projection_errors) == 3
    for stage, (p_stage, (_bank, layers)) in enumerate(
        zip((parent.stage1, parent.stage2, parent.stage3), shared_groups(child)), 1
    ):
        block = list(p_stage)[1]
        m = torch.stack([block.conv1.weight, block.conv2.weight]).detach().double().reshape(2, -1)
        u, s, vh = torch.linalg.svd(m, full_matrices=False)
        best = s[0] * torch.outer(u[:, 0], vh[0])  # the rank-1 Eckart-Young fit
        got = torch.stack([layer.weight.detach().double().reshape(-1) for layer in layers])
        assert torch.allclose(got, best, rtol=1e-4, atol=1e-6)
        reported = child.projection_errors[stage - 1]
        assert reported["stage"] == stage and reported["layers"] == (0, 2)
        assert reported["templates"] == 1
        assert math.isclose(reported["relative_error"], float(s[1] / s.norm()), rel_tol=1e-4), (
            reported
        )
        assert 0 < reported["relative_error"] < 1
        # any other rank-1 fit is worse (here: the first layer's kernel for both)
        other = torch.stack([m[0], m[0]])
        assert (m - best).norm() < (m - other).norm()
    assert count_parameters(child) < count_parameters(parent)


def test_inherit_keeps_the_parents_classes_and_copies_the_unshared_parts():
    parent = _trained_like("WRN-16-1", classes=100)
    child = inherit(parent, "SWRN-16-1-1")
    assert child.fc.out_features == 100
    assert torch.equal(child.fc.weight, parent.fc.weight)
    assert torch.equal(child.stem.weight, parent.stem.weight)
    assert torch.equal(child.stage2[0].conv1.weight, parent.stage2[0].conv1.weight)
    assert torch.equal(child.stage3[1].bn2.running_var, parent.stage3[1].bn2.running_var)


@pytest.mark.parametrize(
    "parent_plan,plan,fragment",
    [
        ("WRN-16-2", "SWRN-22-2-1", "depth 16 and width 2, but plan SWRN-22-2-1 has depth 22"),
        ("WRN-16-2", "SWRN-16-4-1", "has depth 16 and width 4"),
    ],
)
def test_inherit_refuses_a_parent_of_another_shape_in_one_line(parent_plan, plan, fragment):
    with pytest.raises(ValueError) as refused:
        inherit(build_model(parent_plan), plan)
    assert fragment in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(ValueError, match="parent must be a softshare SWRN"):
        inherit(torch.nn.Linear(2, 2), plan)
