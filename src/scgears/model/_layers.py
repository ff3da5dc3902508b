"""Building blocks of the GEARS network: the batch-normalised MLP and graph propagation."""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch_geometric.nn import SGConv


class MLP(nn.Sequential):
    """``Linear -> BatchNorm1d -> ReLU`` per layer, without the last ReLU (GEARS' ``MLP``).

    The output therefore ends with a batch normalisation, as in the reference code.
    """

    def __init__(self, sizes: list[int]):
        layers: list[nn.Module] = []
        for n_in, n_out in itertools.pairwise(sizes):
            layers += [nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU()]
        super().__init__(*layers[:-1])


class GraphPropagation(nn.Module):
    """Simplified graph convolutions (``SGConv``, one hop each) over a fixed graph.

    Node ``i`` gets ``W sum_j w_ji / sqrt(d_j d_i) x_j + b``, ``d`` the weighted in-degree;
    ReLU between layers, not after the last, as in GEARS. The graph is a buffer, so it moves
    with the module and is saved in its state.
    """

    def __init__(
        self, n_hidden: int, n_layers: int, edge_index: torch.Tensor, edge_weight: torch.Tensor
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            [SGConv(n_hidden, n_hidden, K=1, cached=False) for _ in range(n_layers)]
        )
        self.register_buffer("edge_index", edge_index.long())
        self.register_buffer("edge_weight", edge_weight.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x, self.edge_index, self.edge_weight)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x
