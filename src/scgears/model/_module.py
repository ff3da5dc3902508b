"""The GEARS network as an scvi-tools module, computed once per condition, not once per cell."""

from __future__ import annotations

from typing import Literal

import torch
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from ._layers import MLP, GraphPropagation

#: GEARS adds the propagated co-expression embedding to the gene embedding with this weight.
_POSITIONAL_WEIGHT = 0.2

DirectionLoss = Literal["sign", "tanh"]

#: The paper's module settings where scgears' defaults differ (``GEARS(variant="paper")``).
#: One mapping, read by :class:`~scgears.model.GEARS`; add an entry for any new setting whose
#: default departs from the paper.
PAPER_SETTINGS: dict[str, object] = {
    "gamma": 2.0,
    "residual": False,
    "perturbation_init": "normal",
    "perturbation_dropout": 0.0,
    "measured_prior": False,
}


def _all_rows(embedding: nn.Embedding) -> torch.Tensor:
    """``embedding(arange(num_embeddings))``, the same numbers and gradient, without the row loop.

    With ``max_norm``, an embedding lookup first scales every looked-up row longer than
    ``max_norm`` back to it, in place. torch does this one row at a time (a norm and a
    synchronising ``.item()`` per row): for the ~30,000 rows GEARS looks up in every step that
    was ~0.2 s per step on 2 CPU cores. Here the same arithmetic (the row norm, then
    ``max_norm / (norm + 1e-7)`` in double precision) runs on all rows at once; the lookup of
    every row is the weight itself.
    """
    weight = embedding.weight
    if embedding.max_norm is not None:
        with torch.no_grad():
            norms = torch.linalg.vector_norm(weight, ord=embedding.norm_type, dim=1)
            over = norms > embedding.max_norm
            if bool(over.any()):
                scale = embedding.max_norm / (norms[over].double() + 1e-7)
                weight[over] *= scale.to(weight.dtype).unsqueeze(1)
    return weight


class GEARSModule(BaseModuleClass):
    """GEARS (Roohani et al. 2023): a perturbation set -> the change it causes in every gene.

    The network's output for a cell is ``x_ctrl + delta(P)``: a paired control cell's expression
    plus a change that depends only on the perturbation set ``P``. This module therefore computes
    the gene embeddings, the co-expression GNN and the GO GNN once per step, ``delta`` once per
    distinct condition in the batch, and broadcasts it to the cells only in the loss. The reference
    implementation recomputes everything for every cell and, because it stacks the cells' gene nodes
    but indexes the co-expression graph over the first cell's nodes only, propagates co-expression
    messages to the first cell of each batch alone; here every condition gets the propagated
    embedding, as the paper describes.

    Parameters
    ----------
    n_genes
        Number of measured genes (outputs).
    n_perturbation_genes
        Number of nodes of the perturbation graph (the perturbable genes).
    coexpression_edges, perturbation_edges
        ``(edge_index (2, E) source -> target, edge_weight (E,))`` of the two graphs.
    n_hidden
        Hidden size (paper: 64).
    n_go_layers, n_coexpression_layers
        Graph-convolution layers on the perturbation (GO) and co-expression graphs (paper: 1, 1).
    uncertainty
        Add the uncertainty head, trained with a Gaussian negative log-likelihood.
    uncertainty_reg
        Weight of the likelihood term.
    direction_lambda
        Weight of the direction loss (paper's code: 0.1).
    direction_loss
        ``"sign"``: the paper's term ``(sign(y - c) - sign(y_hat - c))^2``. Its gradient is zero
        everywhere, so it is reported but does not train the network (true of the reference as
        well). ``"tanh"``: the same term with ``sign(y_hat - c)`` replaced by
        ``tanh((y_hat - c) / direction_scale)``, which does push predictions to the measured side
        of the control mean.
    direction_scale
        Scale (log-expression units) of the smooth direction term.
    gamma
        Autofocus exponent: the error is raised to the power ``2 + gamma`` (scgears: 0, the
        squared error; paper: 2). See :data:`~scgears.model.PAPER_SETTINGS` for every default
        that departs from the paper.
    perturbation_init
        ``"zeros"`` (scgears) or ``"normal"`` (paper): initial perturbation embeddings.
    perturbation_dropout
        In training, the probability of zeroing each node's own perturbation embedding before
        the GO GNN, so that genes are predicted from their neighbours (scgears: 0.5, paper: 0).
    residual
        Predict each perturbation's difference from the mean training effect (see
        :meth:`inference`) instead of its change from control (scgears: ``True``, paper:
        ``False``).
    measured_prior
        Start every perturbation from what was measured (scgears: ``True``, paper: ``False``;
        see :meth:`inference`): the sum of the
        measured single effects of its genes whose single was in training (the additive
        expectation), the mean single effect for each other gene plus the typical on-target
        change of a perturbed gene's own expression; the network adds its correction (the
        interaction, and how an unmeasured gene differs from the average one). Implies the
        centring of ``residual``. The statistics are set by :class:`~scgears.model.GEARS`.
    n_measured
        Number of genes with a measured training single (rows of the ``measured_effect`` buffer).
    prior_dropout
        With ``measured_prior``, in training, the probability of treating a gene's measured single
        as unmeasured, so that the network learns to predict single effects (what it must do for
        genes never perturbed) and not only interactions.
    correction_scale
        With ``measured_prior``, at prediction (evaluation mode), the network's centred
        correction is multiplied by this factor: a shrinkage of the learned correction towards
        what was measured. Trained on a few dozen conditions, the correction swings from epoch to
        epoch; on the Norman subset halving it lowered the test error and halved its
        epoch-to-epoch spread (see ``docs/model.md``). 1 uses the correction as trained.
    """

    def __init__(
        self,
        n_genes: int,
        n_perturbation_genes: int,
        coexpression_edges: tuple[torch.Tensor, torch.Tensor],
        perturbation_edges: tuple[torch.Tensor, torch.Tensor],
        *,
        n_hidden: int = 64,
        n_go_layers: int = 1,
        n_coexpression_layers: int = 1,
        uncertainty: bool = False,
        uncertainty_reg: float = 1.0,
        direction_lambda: float = 0.1,
        direction_loss: DirectionLoss = "sign",
        direction_scale: float = 0.1,
        gamma: float = 0.0,
        perturbation_init: str = "zeros",
        perturbation_dropout: float = 0.5,
        residual: bool = True,
        measured_prior: bool = True,
        n_measured: int = 0,
        prior_dropout: float = 0.5,
        correction_scale: float = 0.5,
    ):
        super().__init__()
        self.n_genes = n_genes
        self.n_perturbation_genes = n_perturbation_genes
        self.uncertainty = uncertainty
        self.uncertainty_reg = uncertainty_reg
        self.direction_lambda = direction_lambda
        self.direction_loss = direction_loss
        self.direction_scale = direction_scale
        self.gamma = gamma
        self.perturbation_dropout = perturbation_dropout
        self.residual = residual or measured_prior
        self.measured_prior = measured_prior
        self.prior_dropout = prior_dropout
        if not 0.0 <= correction_scale <= 1.0:
            raise ValueError(f"correction_scale must be in [0, 1], got {correction_scale}.")
        self.correction_scale = correction_scale

        # gene embeddings and the co-expression ("positional") embedding
        self.gene_embedding = nn.Embedding(n_genes, n_hidden, max_norm=True)
        self.gene_embedding_norm = nn.BatchNorm1d(n_hidden)
        self.coexpression_embedding = nn.Embedding(n_genes, n_hidden, max_norm=True)
        self.coexpression_gnn = GraphPropagation(
            n_hidden, n_coexpression_layers, *coexpression_edges, n_nodes=n_genes
        )
        self.gene_transform = MLP([n_hidden, n_hidden, n_hidden])

        # perturbation embeddings propagated over the knowledge (GO) graph
        self.perturbation_embedding = nn.Embedding(n_perturbation_genes, n_hidden, max_norm=True)
        if perturbation_init == "zeros":
            nn.init.zeros_(self.perturbation_embedding.weight)
        self.perturbation_gnn = GraphPropagation(
            n_hidden, n_go_layers, *perturbation_edges, n_nodes=n_perturbation_genes
        )
        self.perturbation_fuse = MLP([n_hidden, n_hidden, n_hidden])

        # decoders: shared MLP, gene-specific linear maps, the cross-gene state
        self.perturbed_norm = nn.BatchNorm1d(n_hidden)
        self.shared_decoder = MLP([n_hidden, 2 * n_hidden, n_hidden])
        self.gene_weight_1 = nn.Parameter(torch.empty(n_genes, n_hidden, 1))
        self.gene_bias_1 = nn.Parameter(torch.empty(n_genes, 1))
        self.cross_gene = MLP([n_genes, n_hidden, n_hidden])
        self.gene_weight_2 = nn.Parameter(torch.empty(1, n_genes, n_hidden + 1))
        self.gene_bias_2 = nn.Parameter(torch.empty(1, n_genes))
        for parameter in (
            self.gene_weight_1,
            self.gene_bias_1,
            self.gene_weight_2,
            self.gene_bias_2,
        ):
            nn.init.xavier_normal_(parameter)
        if uncertainty:
            self.uncertainty_head = MLP([n_hidden, 2 * n_hidden, n_hidden, 1])

        # mean control expression: the baseline predictions are added to and the direction reference
        self.register_buffer("control_mean", torch.zeros(n_genes))
        # mean effect of the training perturbations, added to every perturbed condition's delta
        # when the network predicts the residual from it
        self.register_buffer("mean_effect", torch.zeros(n_genes))
        self.register_buffer("perturbed_center", torch.zeros(n_genes))
        # what was measured (measured_prior): node -> row of measured_effect (-1: no training
        # single), the measured single effects, their mean, node -> measured-gene column (-1: not a
        # measured gene), the typical on-target change, and the genes some training cell expresses
        self.register_buffer("measured_row", torch.full((n_perturbation_genes,), -1))
        self.register_buffer("measured_effect", torch.zeros(n_measured, n_genes))
        self.register_buffer("single_mean_effect", torch.zeros(n_genes))
        self.register_buffer("target_column", torch.full((n_perturbation_genes,), -1))
        self.register_buffer("on_target_change", torch.zeros(()))
        self.register_buffer("expressed_genes", torch.ones(n_genes, dtype=torch.bool))
        if measured_prior:
            # added to the perturbation embedding of a gene whose measured single is in the prior,
            # so the network knows which part of the effect is already given
            self.measured_flag = nn.Parameter(torch.zeros(n_hidden))

    # ------------------------------------------------------------------------------------------
    # the network

    def gene_base(self) -> torch.Tensor:
        """Gene embeddings after the co-expression GNN and the gene MLP: (genes, hidden)."""
        base = torch.relu(self.gene_embedding_norm(_all_rows(self.gene_embedding)))
        positional = self.coexpression_gnn(_all_rows(self.coexpression_embedding))
        return self.gene_transform(base + _POSITIONAL_WEIGHT * positional)

    def perturbation_base(self, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """Perturbation embeddings after the GO GNN, of every graph node or of ``nodes``."""
        raw = _all_rows(self.perturbation_embedding)
        if self.training and self.perturbation_dropout > 0:
            keep = torch.rand(raw.shape[0], 1, device=raw.device) >= self.perturbation_dropout
            raw = raw * keep
        return self.perturbation_gnn(raw, nodes)

    def _perturbation_shift(
        self, perturbations: torch.Tensor, measured: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Fused perturbation embedding per condition, 0 for the control: (conditions, hidden).

        ``measured`` (conditions, max genes) flags genes whose measured single is in the prior.
        """
        n_hidden = self.perturbation_embedding.embedding_dim
        present = perturbations >= 0
        used = torch.unique(perturbations[present])
        summed = self.control_mean.new_zeros((perturbations.shape[0], n_hidden))
        if len(used):
            embedded = self.perturbation_base(used)
            position = torch.searchsorted(used, perturbations.clamp(min=0))
            position = position.clamp(max=len(used) - 1)
            per_gene = embedded[position]
            if measured is not None:
                per_gene = per_gene + measured.unsqueeze(-1) * self.measured_flag
            summed = (per_gene * present.unsqueeze(-1)).sum(dim=1)
        perturbed = present.any(dim=1)
        shift = torch.zeros_like(summed)
        if perturbed.any():
            rows = summed[perturbed]
            if self.training and rows.shape[0] == 1:
                # batch norm needs two rows in training; GEARS duplicates the single one too
                fused = self.perturbation_fuse(rows.repeat(2, 1))[:1]
            else:
                fused = self.perturbation_fuse(rows)
            shift = shift.index_put((perturbed.nonzero().squeeze(1),), fused)
        return shift

    def _decode(self, genes: torch.Tensor, shift: torch.Tensor):
        """Gene-wise decoders and cross-gene layer: (conditions, genes) deltas, hidden states."""
        n_conditions = shift.shape[0]
        hidden = genes.unsqueeze(0) + shift.unsqueeze(1)  # (C, G, H)
        hidden = torch.relu(self.perturbed_norm(hidden.reshape(-1, hidden.shape[-1])))
        decoded = self.shared_decoder(hidden).reshape(n_conditions, self.n_genes, -1)
        per_gene = (decoded * self.gene_weight_1.squeeze(-1)).sum(-1) + self.gene_bias_1.squeeze(-1)
        cross = self.cross_gene(per_gene)  # (C, H)
        combined = torch.cat(
            [per_gene.unsqueeze(-1), cross.unsqueeze(1).expand(-1, self.n_genes, -1)], dim=-1
        )
        delta = (combined * self.gene_weight_2).sum(-1) + self.gene_bias_2
        return delta, hidden.reshape(n_conditions, self.n_genes, -1)

    def _measured(self, perturbations: torch.Tensor) -> torch.Tensor:
        """Which genes of each condition enter the prior with their measured single (bool)."""
        present = perturbations >= 0
        measured = present & (self.measured_row[perturbations.clamp(min=0)] >= 0)
        if self.training and self.prior_dropout > 0:
            keep = torch.rand(measured.shape, device=measured.device) >= self.prior_dropout
            measured = measured & keep
        return measured

    def prior(self, perturbations: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
        """What was measured, per condition: (conditions, genes); 0 for the control.

        The sum over a condition's genes of the measured single effect (``measured`` genes) or
        the mean single effect plus the typical on-target change at the gene's own column.
        """
        present = perturbations >= 0
        nodes = perturbations.clamp(min=0)
        rows = self.measured_row[nodes].clamp(min=0)
        if self.measured_effect.shape[0]:
            effects = self.measured_effect[rows]  # (C, M, G)
        else:
            effects = self.single_mean_effect.expand(*rows.shape, -1)
        unmeasured = present & ~measured
        effects = torch.where(measured.unsqueeze(-1), effects, self.single_mean_effect)
        prior = (effects * present.unsqueeze(-1)).sum(1)
        column = self.target_column[nodes]
        on_target = unmeasured & (column >= 0)
        if on_target.any():
            condition = torch.arange(len(perturbations), device=prior.device)
            condition = condition.unsqueeze(1).expand_as(column)
            prior = prior.index_put(
                (condition[on_target], column[on_target]),
                self.on_target_change.expand(int(on_target.sum())).to(prior.dtype),
                accumulate=True,
            )
        return prior

    def network(
        self, perturbations: torch.Tensor, measured: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's own output per condition, before any prior or centring."""
        genes = self.gene_base()  # (G, H)
        shift = self._perturbation_shift(perturbations, measured)
        return self._decode(genes, shift)

    @auto_move_data
    def inference(self, perturbations: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Predicted change ``delta`` (and ``logvar``) for each condition of a batch.

        ``perturbations`` is a (conditions, max genes) tensor of perturbation-graph node indices,
        padded with -1; a row of -1 is the control, whose change is exactly 0. In ``residual``
        mode the network's outputs for perturbed conditions are centred (on the batch's perturbed
        conditions in training, on all training perturbations at prediction, see
        :meth:`update_center`) and added to the measured mean training effect: the network only
        says how a perturbation differs from the average one, and a perturbation it cannot tell
        apart is predicted to have the mean effect. With ``measured_prior`` they are added to
        :meth:`prior` instead: the additive expectation of the measured singles, so a pair of
        measured genes starts from the additive baseline and the network learns the interaction.
        """
        n_conditions = perturbations.shape[0]
        perturbed = (perturbations >= 0).any(dim=1)
        measured = self._measured(perturbations) if self.measured_prior else None
        delta, hidden = self.network(perturbations, measured)
        if self.residual:
            if self.training and perturbed.any():
                center = delta[perturbed].mean(0)
            else:
                center = self.perturbed_center
            correction = delta - center
            if self.measured_prior:
                anchor = self.prior(perturbations, measured)
                if not self.training:
                    correction = self.correction_scale * correction
            else:
                anchor = self.mean_effect
            delta = anchor + correction
        delta = delta * perturbed.unsqueeze(1)
        logvar = None
        if self.uncertainty:
            logvar = self.uncertainty_head(hidden.reshape(-1, hidden.shape[-1]))
            logvar = logvar.reshape(n_conditions, self.n_genes)
        return {"delta": delta, "logvar": logvar}

    @torch.inference_mode()
    def update_center(self, perturbations: torch.Tensor, batch_size: int = 256) -> None:
        """Store the mean network output over the training perturbations (``residual`` mode).

        ``perturbations`` are the node rows of the training perturbed conditions. Run after the
        weights change (the training plan does it before each validation and at the end).
        """
        if not self.residual or len(perturbations) == 0:
            return
        was_training = self.training
        self.eval()
        try:
            total = torch.zeros_like(self.perturbed_center)
            for start in range(0, len(perturbations), batch_size):
                rows = perturbations[start : start + batch_size].to(self.control_mean.device)
                measured = self._measured(rows) if self.measured_prior else None
                total += self.network(rows, measured)[0].sum(0)
            self.perturbed_center.copy_(total / len(perturbations))
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------------------------------
    # scvi-tools module interface

    def _get_inference_input(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"perturbations": tensors["perturbations"]}

    def _get_generative_input(self, tensors, inference_outputs) -> dict:
        return {}

    def generative(self) -> dict:
        """GEARS has no generative step: the prediction is the control plus ``delta``."""
        return {}

    def loss(self, tensors, inference_outputs, generative_outputs=None) -> LossOutput:
        """GEARS' loss on the cells of a batch: autofocus error, direction term, likelihood.

        Each condition contributes the mean over its cells and its expressed genes (non-zero mean;
        all genes for the control) of ``|y_hat - y|^(2 + gamma)`` plus ``direction_lambda`` times
        the direction term; conditions are averaged, as in GEARS' ``loss_fct``.
        """
        if "target" in tensors:
            return self.statistics_loss(tensors, inference_outputs)
        delta = inference_outputs["delta"]
        logvar = inference_outputs["logvar"]
        x = tensors["x"]
        index = tensors["condition_index"]
        mask = tensors["expressed"][index].to(x.dtype)  # (N, G)
        n_conditions = delta.shape[0]
        cells_per_condition = torch.bincount(index, minlength=n_conditions).to(x.dtype)
        genes_per_condition = tensors["expressed"].sum(1).to(x.dtype).clamp(min=1)
        weight = 1.0 / (cells_per_condition * genes_per_condition)[index]  # (N,)

        prediction = tensors["x_control"] + delta[index]
        error = prediction - x
        autofocus = (error.abs().pow(2 + self.gamma) * mask).sum(1)
        reference = self.control_mean.unsqueeze(0)
        if self.direction_loss == "tanh":
            predicted_side = torch.tanh((prediction - reference) / self.direction_scale)
        else:
            predicted_side = torch.sign(prediction - reference)
        direction = ((torch.sign(x - reference) - predicted_side).pow(2) * mask).sum(1)
        per_cell = autofocus + self.direction_lambda * direction
        extra = {
            "autofocus": (autofocus * weight).sum() / n_conditions,
            "direction": (direction * weight).sum() / n_conditions,
            "mse": (error.pow(2) * mask).sum() / mask.sum().clamp(min=1),
        }
        if logvar is not None:
            cell_logvar = logvar[index]
            nll = 0.5 * (torch.exp(-cell_logvar) * error.pow(2) + cell_logvar)
            nll = (nll * mask).sum(1)
            per_cell = per_cell + self.uncertainty_reg * nll
            extra["gaussian_nll"] = (nll * weight).sum() / n_conditions
        loss = (per_cell * weight).sum() / n_conditions
        return LossOutput(loss=loss, n_obs_minibatch=x.shape[0], extra_metrics=extra)

    @property
    def statistics_exact(self) -> bool:
        """Whether :meth:`statistics_loss` has the gradient of the cell-level :meth:`loss`.

        True for the squared error (``gamma=0``) with the Gaussian likelihood of the uncertainty
        head, and a direction term that is either off or the paper's ``"sign"`` term (its
        gradient is zero). The autofocus power ``2 + gamma > 2`` and the smooth ``"tanh"``
        direction term depend on each cell's error, which no per-condition statistic carries.
        """
        return self.gamma == 0 and (self.direction_lambda == 0 or self.direction_loss == "sign")

    def statistics_loss(self, tensors, inference_outputs) -> LossOutput:
        """:meth:`loss` from per-condition sufficient statistics instead of cells.

        For a condition with ``n`` cells, paired controls ``c_i`` and cells ``x_i``, the cell-level
        error is ``e_i = c_i + delta - x_i``. Its mean over cells is ``delta - target`` with
        ``target = mean(x - c)``, and ``mean(e_i^2) = (delta - target)^2 + variance``, where
        ``variance`` is the within-condition variance of ``x - c``, which does not depend on the
        network. So the squared error and the Gaussian likelihood
        ``0.5 (exp(-s) mean(e^2) + s)`` are the cell-level ones exactly, gradients included
        (:attr:`statistics_exact`). The paper's sign direction term has no gradient; here it is
        computed on the condition means (``sign(target)`` against ``sign(delta)``), a reported
        value only.

        ``tensors`` holds, per condition of the batch: ``target`` and ``variance`` (conditions,
        genes), ``n_cells``, ``expressed`` (the loss mask) and ``perturbations``.
        """
        delta = inference_outputs["delta"]
        logvar = inference_outputs["logvar"]
        target = tensors["target"]
        mask = tensors["expressed"].to(delta.dtype)
        n_genes = mask.sum(1).clamp(min=1)
        n_conditions = delta.shape[0]
        squared = (delta - target).pow(2) + tensors["variance"]  # mean over cells of e^2
        autofocus = (squared * mask).sum(1) / n_genes
        if self.direction_loss == "tanh":
            predicted_side = torch.tanh(delta / self.direction_scale)
        else:
            predicted_side = torch.sign(delta)
        direction = ((torch.sign(target) - predicted_side).pow(2) * mask).sum(1) / n_genes
        per_condition = autofocus + self.direction_lambda * direction
        n_cells = tensors["n_cells"].to(delta.dtype)
        extra = {
            "autofocus": autofocus.sum() / n_conditions,
            "direction": direction.sum() / n_conditions,
            "mse": (n_cells[:, None] * squared * mask).sum()
            / (n_cells[:, None] * mask).sum().clamp(min=1),
        }
        if logvar is not None:
            nll = 0.5 * (torch.exp(-logvar) * squared + logvar)
            nll = (nll * mask).sum(1) / n_genes
            per_condition = per_condition + self.uncertainty_reg * nll
            extra["gaussian_nll"] = nll.sum() / n_conditions
        loss = per_condition.sum() / n_conditions
        return LossOutput(loss=loss, n_obs_minibatch=int(n_cells.sum()), extra_metrics=extra)

    def sample(self, *args, **kwargs):
        """Not used: GEARS predicts condition means, see :meth:`inference`."""
        raise NotImplementedError("GEARS predicts mean profiles; use GEARS.predict.")
