"""A simulated CRISPR screen from a known regulatory network, with planted genetic interactions.

The generator is the offline default dataset of scgears: it returns an AnnData shaped like
pertpy's preprocessed ``norman_2019`` (raw counts in ``layers["counts"]``, log-normalised ``X``,
``obs["perturbation_name"]``), and records everything a test or a benchmark needs to know about
the truth in ``uns["simulation"]``.

How the truth is built, in order (the numbers are module constants):

1. **Genes.** Perturbed genes are drawn in clusters of 3-6 genes that share Gene Ontology terms
   (Jaccard index of their term sets >= 0.2, the quantity GEARS' GO graph is built from); the other
   measured genes are drawn from all annotated human genes. All names are real symbols of the GO
   table shipped with scgears (``scgears._resources.go_annotations``).
2. **Regulatory network.** Every GO term of a perturbed gene is a *programme*: a signed set of
   4-12 target genes (up to half of them genes annotated with that term) and, one time in four, a
   mediator gene. A perturbed gene's input weights are the sum of the programmes of its terms,
   weighted by term specificity (squared inverse document frequency), mixed with a private
   programme of its own (``go_consistency`` sets the share), scaled so that its strongest edge is
   2.5, and cut to its 40 strongest target edges. Genes sharing GO terms therefore regulate
   overlapping targets with the same signs, which is what makes an unseen perturbation
   predictable from its GO neighbours. Mediators (3% of the genes) form a second layer, each
   regulating 10-30 targets.
3. **Dynamics.** The noise-free log fold change of a gene is a saturating function of its signed
   regulatory input, ``gain * (log_sigmoid(basal + input) - log_sigmoid(basal))``: activation
   saturates, repression does not, and two regulators hitting the same gene do not simply add.
   CRISPRa multiplies the expression of its target 4- to 30-fold, CRISPRi leaves 8-35% of it; the
   regulatory activity of a perturbed gene is ``2 tanh(log_fold / 2)`` of that change.
4. **Genetic interactions** are planted in some doubles by changing how the two regulators act
   together: ``synergy`` (both act 2.5-3.2 times as strongly by default, ``synergy_factor``),
   ``suppression`` (0.2-0.35 times, ``suppression_factor``),
   ``neomorphism`` (the pair switches on a programme of 30-60 expressed genes that neither single
   touches), ``redundancy`` (paralogs: the second gene copies the regulatory edges of the first,
   and in the pair each acts half as strongly, so the pair looks like either single) and
   ``epistasis`` (the dominant gene silences the other one: neither its induction nor its effects
   show in the pair). The other doubles are left additive, through the nonlinear network.
5. **Cells.** Each cell gets a library size (log-normal, sd 0.35), a perturbation efficiency (one of
   five quantile levels of a log-normal with sd 0.3), a cell-state variation shared by three
   modules of genes, and negative-binomial counts with gene-wise dispersion (inverse dispersion
   log-normal around 4), sampled exactly by a compiled (numba) kernel in parallel chunks.

One module per idea: ``_genes`` (1), ``_network`` (2), ``_dynamics`` (3), ``_interactions`` (4),
``_counts`` (5), ``_truth`` (the tables of ``uns["simulation"]``) and ``_screen`` (the entry point).
"""

from __future__ import annotations

from ._dynamics import EFFICIENCY_SD, N_EFFICIENCY_LEVELS
from ._interactions import ADDITIVE, GI_SUBTYPES
from ._screen import PERTURBATION_TYPES, simulate_screen

__all__ = [
    "ADDITIVE",
    "EFFICIENCY_SD",
    "GI_SUBTYPES",
    "N_EFFICIENCY_LEVELS",
    "PERTURBATION_TYPES",
    "simulate_screen",
]
