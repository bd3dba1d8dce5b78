"""softshare.analysis: coefficient similarity between layers."""

import torch

from softshare.analysis import layer_similarity


def test_layer_similarity_by_hand():
    m = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 3.0]])
    expected = torch.tensor([[1, 0, 2**-0.5], [0, 1, 2**-0.5], [2**-0.5, 2**-0.5, 1]])
    assert torch.allclose(layer_similarity(m), expected, atol=1e-6)
