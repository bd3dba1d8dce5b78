import pytest
import torch

import softshare
from softshare import count_parameters, parse_plan
from softshare.analysis import coefficient_matrices
from softshare.fold import cluster_layers, fold_model
from softshare.models import shared_groups


def _set(model, vectors_per_bank):
    for (_bank, layers), vectors in zip(shared_groups(model), vectors_per_bank):
        with torch.no_grad():
            for layer, v in zip(layers, vectors):
                layer.coefficients.copy_(torch.tensor(v, dtype=torch.float32))


def test_clusters_follow_the_threshold():
    sim = torch.tensor([[1.0, 0.99, 0.2], [0.99, 1.0, 0.3], [0.2, 0.3, 1.0]])
    assert cluster_layers(sim, 0.98) == [[0, 1], [2]]
    assert cluster_layers(sim, 0.999) == [[0], [1], [2]]
    assert cluster_layers(sim, 0.1) == [[0, 1, 2]]
    with pytest.raises(ValueError, match="threshold"):
        cluster_layers(sim, 0.0)


def test_folding_parallel_layers_keeps_outputs_and_saves_templates():
    torch.manual_seed(0)
    model = softshare.build_model("22-1:4x3/4x3/4x2").eval()
    # Bank 1: layers 0, 1, 3 parallel (scales 1, -2, 0.5), layer 2 its own; bank 2: all parallel;
    # bank 3: two independent directions (2 templates, 2 clusters -> nothing to fold).
    _set(
        model,
        [
            [[0.6, 0.8, 0.0], [-1.2, -1.6, 0.0], [0.0, 0.0, 1.0], [0.3, 0.4, 0.0]],
            [[1.0, -1.0, 0.5], [2.0, -2.0, 1.0], [-1.0, 1.0, -0.5], [0.5, -0.5, 0.25]],
            [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]],
        ],
    )
    folded, report = fold_model(model, threshold=0.98)
    assert [(r["templates_before"], r["templates_after"]) for r in report] == [
        (3, 2),
        (3, 1),
        (2, 2),
    ]
    assert report[0]["clusters"] == [[0, 1, 3], [2]]
    assert folded.config.plan == "22-1:4x2/4x1/4x2"
    assert count_parameters(folded) == parse_plan("22-1:4x2/4x1/4x2").num_parameters()
    saved = count_parameters(model) - count_parameters(folded)
    # stage 1 (16 channels) drops 1 template and 4 coefficients; stage 2 (32) drops 2 and 8.
    assert saved == (1 * 16 * 16 * 9 + 4 * 1) + (2 * 32 * 32 * 9 + 4 * 2)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref, out = model(x), folded(x)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


def test_folding_non_parallel_layers_changes_the_model():
    torch.manual_seed(0)
    model = softshare.build_model("16-1:2x2/2x2/2x2").eval()
    _set(model, [[[1.0, 0.0], [0.9, 0.3]]] * 3)  # |cos| = 0.949: folds at 0.9, not at 0.98
    assert fold_model(model, 0.98)[0].config.plan == "16-1:2x2/2x2/2x2"
    folded, _ = fold_model(model, 0.9)
    assert folded.config.plan == "16-1:2x1/2x1/2x1"
    x = torch.randn(2, 3, 16, 16)
    assert not torch.allclose(folded(x), model(x))
    entry = coefficient_matrices(folded)[0]
    assert entry["templates"] == 1 and len(entry["coefficients"]) == 2
