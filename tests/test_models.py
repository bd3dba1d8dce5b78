import json

import pytest
import torch
from torch import nn

from softshare import (
    ModelConfig,
    SConv2d,
    build_model,
    count_parameters,
    parse_plan,
    shared_groups,
)


@pytest.mark.parametrize("name", ["WRN-28-10", "SWRN-28-10-1", "SWRN-28-10-2"])
def test_paper_parameter_counts_built(name):
    model = build_model(name, num_classes=10)
    assert count_parameters(model) == parse_plan(name).num_parameters(10)


@pytest.mark.parametrize(
    "text", ["WRN-16-4", "SWRN-16-4-3", "22-2:2x3,2/4/1x1,3x5", "10-1:-/-/-", "16-1:2/1,1x2/2x4"]
)
@pytest.mark.parametrize("classes", [10, 100])
def test_analytic_count_matches_built_model(text, classes):
    model = build_model(text, num_classes=classes)
    assert count_parameters(model) == parse_plan(text).num_parameters(classes)


def _hook_multiply_adds(model, size):
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, (nn.Conv2d, SConv2d)):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += output.shape[2] * output.shape[3] * output.shape[1] * module.in_channels * k
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, SConv2d, nn.Linear))
    ]
    model(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize(
    "text,size", [("SWRN-16-2-2", 32), ("WRN-10-1", 24), ("22-1:2x3,2/4/4x1", 17)]
)
def test_multiply_adds_match_hooks_and_ignore_sharing(text, size):
    plan = parse_plan(text)
    assert plan.multiply_adds(size) == _hook_multiply_adds(build_model(text).eval(), size)
    plain = parse_plan(f"WRN-{plan.depth}-{plan.width}")
    assert plan.multiply_adds(size) == plain.multiply_adds(size)


def test_model_config_json_round_trip_and_rejects_unknown_keys():
    cfg = ModelConfig("SWRN-16-4-2", num_classes=100)
    assert cfg.plan == "16-4:2x2/2x2/2x2"
    again = ModelConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({"plan": "WRN-16-4", "dropout": 0.3})
    with pytest.raises(ValueError, match="num_classes"):
        ModelConfig("WRN-16-4", num_classes=0)


@pytest.mark.slow
def test_state_dict_into_fresh_model_reproduces_outputs():
    torch.manual_seed(0)
    model = build_model("22-2:2x3,2/4x2/1,3x1").eval()
    fresh = build_model("22-2:2x3,2/4x2/1,3x1").eval()
    x = torch.randn(3, 3, 32, 32)
    assert not torch.equal(model(x), fresh(x))
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(model(x), fresh(x))


def test_groups_follow_plan_and_coefficients_are_orthonormal():
    model = build_model("22-1:2x3,2/4x4/4x2")
    groups = shared_groups(model)
    assert [(bank.num_templates, len(layers)) for bank, layers in groups] == [
        (3, 2),
        (4, 4),
        (2, 4),
    ]
    bank, layers = groups[1]
    m = torch.stack([layer.coefficients.detach() for layer in layers])
    assert torch.allclose(m @ m.T, torch.eye(4), atol=1e-5)


@pytest.mark.parametrize("size", [32, 24, 64])
def test_any_input_size_and_class_count(size):
    model = build_model("SWRN-16-1-2", num_classes=7)
    assert model(torch.randn(2, 3, size, size)).shape == (2, 7)
