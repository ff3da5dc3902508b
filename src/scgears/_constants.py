"""Default keys under which scgears writes into AnnData (all share the ``scgears`` prefix)."""

CONTROL = "ctrl"
"""Canonical label of the control (unperturbed) condition."""

SEPARATOR = "+"
"""Joins the sorted gene names of a condition into its canonical label."""

CONTROL_LABEL = "control"
"""The control label of pertpy's ``perturbation_name`` convention, written by ``sg.datasets``."""

CONDITION_KEY = "scgears_condition"
DE_KEY = "scgears_de"
SPLIT_KEY = "scgears_split"
COEXPRESSION_KEY = "scgears_coexpression"
PERTURBATION_GRAPH_KEY = "scgears_perturbation_graph"
GI_KEY = "scgears_gi"
PROFILE_KEY = "scgears_profile"

N_PERTURBED = "n_perturbed_genes"
"""``obs`` column of profiles: genes per condition (scanpy's ``n_genes`` counts expressed genes)."""

SPLIT_SETS = ("train", "val", "test")
SUBGROUPS = ("unseen_single", "combo_seen0", "combo_seen1", "combo_seen2")
