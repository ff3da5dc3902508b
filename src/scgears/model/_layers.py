"""Building blocks of the GEARS network: the batch-normalised MLP and graph propagation."""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch_geometric.nn.conv.gcn_conv import gcn_norm


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
    """Simplified graph convolutions (SGConv, one hop each) over a fixed weighted graph.

    Layer ``l`` computes ``x_i <- W_l sum_j A_ij x_j + b_l`` with ``A = D^-1/2 W D^-1/2`` the
    symmetrically normalised adjacency (``D`` the weighted in-degree, a self loop of weight 1 added
    where missing): PyTorch Geometric's ``SGConv(K=1)``, with ReLU between layers and not after the
    last, as in GEARS. ``A`` is normalised once and kept as buffers, and a forward pass can ask for
    a subset of nodes: only their receptive field is propagated, so a perturbation graph of all
    20,000 human genes costs little when a batch perturbs a few dozen of them.
    """

    def __init__(
        self,
        n_hidden: int,
        n_layers: int,
        edge_index: torch.Tensor,
        edge_weight: torch.Tensor,
        n_nodes: int,
    ):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(n_hidden, n_hidden) for _ in range(n_layers)])
        self.n_nodes = n_nodes
        index, weight = gcn_norm(
            edge_index.long(), edge_weight.float(), num_nodes=n_nodes, add_self_loops=True
        )
        # row = target, column = source: A @ x sums the messages each node receives
        order = torch.argsort(index[1] * n_nodes + index[0])
        self.register_buffer("targets", index[1][order], persistent=False)
        self.register_buffer("sources", index[0][order], persistent=False)
        self.register_buffer("weights", weight[order], persistent=False)

    def forward(self, x: torch.Tensor, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """Propagate ``x`` (all nodes x hidden); return every node, or only ``nodes``, in order."""
        all_nodes = torch.arange(self.n_nodes, device=x.device)
        if nodes is None:
            nodes = all_nodes
        # receptive fields, last layer first: the rows each layer must produce
        needed = [torch.unique(nodes)]
        for _ in range(len(self.layers) - 1):
            needed.append(torch.unique(self.sources[self._receives(needed[-1])]))
        needed.reverse()
        full = x
        out = x
        for i, (layer, rows) in enumerate(zip(self.layers, needed, strict=True)):
            out = layer(self._propagate(full, rows))
            if i < len(self.layers) - 1:
                full = x.new_zeros((x.shape[0], out.shape[1])).index_copy(0, rows, torch.relu(out))
        return out[torch.searchsorted(needed[-1], nodes)]

    def _receives(self, rows: torch.Tensor) -> torch.Tensor:
        """Which edges end in one of ``rows``: ``torch.isin(targets, rows)`` by a table lookup.

        ``isin`` sorts the ~400,000 edges of a whole-genome GO graph on every call; a boolean
        table over the nodes gives the same mask in one gather.
        """
        table = torch.zeros(self.n_nodes, dtype=torch.bool, device=rows.device)
        table[rows] = True
        return table[self.targets]

    def _propagate(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``(A @ x)[rows]`` for sorted unique ``rows``, touching only their edges."""
        if len(rows) == self.n_nodes:
            keep = slice(None)
            position = self.targets
        else:
            keep = self._receives(rows)
            position = torch.searchsorted(rows, self.targets[keep])
        messages = x[self.sources[keep]] * self.weights[keep].unsqueeze(1)
        return x.new_zeros((len(rows), x.shape[1])).index_add(0, position, messages)
