"""The model's knowledge: both graphs, the vocabularies and the training means, as one value.

A :class:`ModelGraphs` is gathered once from the AnnData when the model is created, saved with
the model as plain arrays (:meth:`ModelGraphs.to_arrays`), so loading never recomputes it from
data and never unpickles anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp
import torch
from anndata import AnnData

from .._conditions import condition_genes
from ._data import SplitStatistics


def check_graphs(adata: AnnData, *, coexpression_key: str, perturbation_graph_key: str) -> None:
    """Raise an error naming the ``pp`` function to run when a graph is missing."""
    if coexpression_key not in adata.varp:
        raise KeyError(
            f"adata.varp[{coexpression_key!r}] not found: build the co-expression graph with "
            "`sg.pp.coexpression_graph(adata)` (after `sg.pp.split_perturbations`)."
        )
    if perturbation_graph_key not in adata.uns:
        raise KeyError(
            f"adata.uns[{perturbation_graph_key!r}] not found: build the perturbation graph with "
            "`sg.pp.perturbation_graph(adata)`."
        )
    stored = adata.uns[perturbation_graph_key]
    if not isinstance(stored, dict) or "graph" not in stored or "genes" not in stored:
        raise ValueError(
            f"adata.uns[{perturbation_graph_key!r}] is not a perturbation graph (needs 'genes' and "
            "'graph'); rebuild it with `sg.pp.perturbation_graph(adata)`."
        )


@dataclass(frozen=True)
class ModelGraphs:
    """Graphs, gene vocabularies and training means of a GEARS model (immutable).

    Attributes
    ----------
    genes
        Measured genes (the model's outputs), in ``var`` order.
    perturbation_genes
        Nodes of the perturbation graph: the genes the model can perturb.
    coexpression, perturbation
        The two graphs (CSR; row ``i`` lists the sources of node ``i``).
    isolated
        Perturbable genes without perturbation-graph edges (low-confidence predictions).
    seen_genes
        Genes whose single perturbation was in train or val.
    control_mean, mean_effect
        Mean training control expression; mean effect of the train and val perturbations.
    fingerprint
        Hashes of the data these were built from (see :meth:`~scgears.model.GEARS.train`).
    """

    genes: np.ndarray
    perturbation_genes: np.ndarray
    coexpression: sp.csr_matrix
    perturbation: sp.csr_matrix
    isolated: np.ndarray
    seen_genes: np.ndarray
    control_mean: np.ndarray
    mean_effect: np.ndarray
    fingerprint: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_anndata(
        cls,
        adata: AnnData,
        statistics: SplitStatistics,
        *,
        coexpression_key: str,
        perturbation_graph_key: str,
        fingerprint: dict[str, str],
    ) -> ModelGraphs:
        """Collect the graphs of ``adata`` and the training means of ``statistics``."""
        check_graphs(
            adata, coexpression_key=coexpression_key, perturbation_graph_key=perturbation_graph_key
        )
        stored = adata.uns[perturbation_graph_key]
        perturbation = sp.csr_matrix(stored["graph"], dtype=np.float32)
        perturbation_genes = np.asarray(stored["genes"]).astype(str)
        if perturbation.shape != (len(perturbation_genes),) * 2:
            raise ValueError(
                f"uns[{perturbation_graph_key!r}]['graph'] has shape {perturbation.shape} but "
                f"lists {len(perturbation_genes)} genes; rebuild it with "
                "sg.pp.perturbation_graph(adata)."
            )
        trained = [
            c
            for c, n in zip(
                statistics.conditions,
                statistics.n_cells("train") + statistics.n_cells("val"),
                strict=True,
            )
            if n > 0
        ]
        missing = sorted({g for c in trained for g in condition_genes(c)} - set(perturbation_genes))
        if missing:
            raise ValueError(
                f"{len(missing)} perturbed genes of training conditions are not nodes of the "
                f"perturbation graph: {missing[:10]}. Rebuild it after registering the "
                "perturbations: sg.pp.perturbation_graph(adata)."
            )
        seen = sorted({condition_genes(c)[0] for c in trained if len(condition_genes(c)) == 1})
        return cls(
            genes=np.asarray(adata.var_names).astype(str),
            perturbation_genes=perturbation_genes,
            coexpression=sp.csr_matrix(adata.varp[coexpression_key], dtype=np.float32),
            perturbation=perturbation,
            isolated=np.asarray(stored.get("isolated", []), dtype=str),
            seen_genes=np.asarray(seen, dtype=str),
            control_mean=statistics.control_mean().astype(np.float32),
            mean_effect=statistics.mean_effect().astype(np.float32),
            fingerprint=dict(fingerprint),
        )

    @cached_property
    def node_of(self) -> dict[str, int]:
        """Perturbation-graph node of each perturbable gene."""
        return {g: i for i, g in enumerate(self.perturbation_genes)}

    def unknown(self, labels) -> list[str]:
        """Genes of ``labels`` that are not perturbation-graph nodes, sorted."""
        return sorted({g for c in labels for g in condition_genes(c)} - set(self.node_of))

    def encode(self, labels, *, strict: bool = True) -> np.ndarray:
        """(conditions, max genes) node indices of condition labels, padded with -1.

        With ``strict=False`` genes outside the graph are left at -1 (conditions the model
        never trains on); otherwise they raise an error saying how to add them.
        """
        if strict:
            unknown = self.unknown(labels)
            if unknown:
                raise ValueError(
                    f"{len(unknown)} genes are not in the model's perturbation graph: "
                    f"{unknown[:20]}" + (" ..." if len(unknown) > 20 else "") + ". The model can "
                    "only predict genes that were graph nodes when it was trained: add them with "
                    "`sg.pp.perturbation_graph(adata, genes=[...])` before creating and training "
                    "the model."
                )
        width = max([1, *[len(condition_genes(c)) for c in labels]])
        nodes = np.full((len(labels), width), -1, dtype=np.int64)
        for i, label in enumerate(labels):
            for j, gene in enumerate(condition_genes(label)):
                nodes[i, j] = self.node_of.get(gene, -1)
        return nodes

    # ------------------------------------------------------------------------------------------
    # plain arrays for saving (no object arrays: loadable with allow_pickle=False)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain numeric and unicode arrays (an ``.npz`` without pickles)."""
        arrays = {
            "genes": self.genes.astype(str),
            "perturbation_genes": self.perturbation_genes.astype(str),
            "isolated": self.isolated.astype(str),
            "seen_genes": self.seen_genes.astype(str),
            "control_mean": self.control_mean,
            "mean_effect": self.mean_effect,
            "fingerprint_keys": np.asarray(list(self.fingerprint), dtype=str),
            "fingerprint_values": np.asarray(list(self.fingerprint.values()), dtype=str),
        }
        for name in ("coexpression", "perturbation"):
            graph = getattr(self, name)
            arrays[f"{name}_data"] = graph.data
            arrays[f"{name}_indices"] = graph.indices
            arrays[f"{name}_indptr"] = graph.indptr
            arrays[f"{name}_shape"] = np.asarray(graph.shape)
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> ModelGraphs:
        """Inverse of :meth:`to_arrays`."""
        graphs = {
            name: sp.csr_matrix(
                (arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"]),
                shape=tuple(int(s) for s in arrays[f"{name}_shape"]),
            )
            for name in ("coexpression", "perturbation")
        }
        return cls(
            genes=np.asarray(arrays["genes"]).astype(str),
            perturbation_genes=np.asarray(arrays["perturbation_genes"]).astype(str),
            isolated=np.asarray(arrays["isolated"]).astype(str),
            seen_genes=np.asarray(arrays["seen_genes"]).astype(str),
            control_mean=np.asarray(arrays["control_mean"], dtype=np.float32),
            mean_effect=np.asarray(arrays["mean_effect"], dtype=np.float32),
            fingerprint=dict(
                zip(
                    [str(k) for k in arrays["fingerprint_keys"]],
                    [str(v) for v in arrays["fingerprint_values"]],
                    strict=True,
                )
            ),
            **graphs,
        )


def edges(graph: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor]:
    """``(edge_index, edge_weight)`` of a graph whose row ``i`` lists the sources of node ``i``."""
    coo = sp.coo_matrix(graph)
    index = torch.from_numpy(np.vstack([coo.col, coo.row]).astype(np.int64))
    return index, torch.from_numpy(coo.data.astype(np.float32))
