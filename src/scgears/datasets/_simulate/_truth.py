"""Ground-truth tables recorded in ``uns["simulation"]``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..._conditions import condition_label
from ._network import _Network


def _edge_table(net: _Network) -> pd.DataFrame:
    names = net.genes
    parts = []
    src, tgt = np.nonzero(net.w_target)
    parts.append((names[net.perturbed[src]], names[tgt], net.w_target[src, tgt], "programme"))
    src, tgt = np.nonzero(net.w_mediator)
    parts.append(
        (
            names[net.perturbed[src]],
            names[net.mediators[tgt]],
            net.w_mediator[src, tgt],
            "programme",
        )
    )
    src, tgt = np.nonzero(net.v_target)
    parts.append((names[net.mediators[src]], names[tgt], net.v_target[src, tgt], "mediator"))
    for (a, b), weights in net.neomorphic.items():
        tgt = np.flatnonzero(weights)
        label = condition_label(names[net.perturbed[[a, b]]])
        parts.append(
            (np.full(len(tgt), label, dtype=object), names[tgt], weights[tgt], "neomorphic")
        )
    return pd.DataFrame(
        {
            "source": np.concatenate([p[0] for p in parts]).astype(str),
            "target": np.concatenate([p[1] for p in parts]).astype(str),
            "weight": np.concatenate([p[2] for p in parts]).astype(np.float32),
            "kind": np.concatenate([np.full(len(p[0]), p[3]) for p in parts]).astype(str),
        }
    )


def _gene_table(net: _Network) -> pd.DataFrame:
    role = np.full(len(net.genes), "target", dtype=object)
    role[net.perturbed] = "perturbed"
    role[net.mediators] = "mediator"
    cluster = np.full(len(net.genes), -1, dtype=np.int64)
    cluster[net.perturbed] = net.clusters
    self_fold = np.zeros(len(net.genes), dtype=np.float32)
    self_fold[net.perturbed] = net.self_shift
    return pd.DataFrame(
        {"role": role.astype(str), "go_cluster": cluster, "self_log_fold": self_fold},
        index=pd.Index(net.genes, name="gene"),
    )
