"""Perturbation-level train / validation / test splits: GEARS' kinds, its sampling bugs fixed."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from .._anndata import get_conditions
from .._conditions import as_condition, condition_genes
from .._constants import CONDITION_KEY, CONTROL, SPLIT_KEY
from .._copy import check_copy

logger = logging.getLogger(__name__)

SplitKind = Literal[
    "simulation",
    "simulation_single",
    "combo_seen0",
    "combo_seen1",
    "combo_seen2",
    "single",
    "custom",
]
#: The rule behind each kind: GEARS' "single", "combo_seen0" and "combo_seen1" hold out the same
#: conditions (scgears tests and labels them all), so they are one rule under three names.
_RULES = {
    "simulation": "simulation",
    "simulation_single": "simulation",
    "single": "test_genes",
    "combo_seen0": "test_genes",
    "combo_seen1": "test_genes",
    "combo_seen2": "test_combinations",
    "custom": "custom",
}
_KINDS = tuple(_RULES)
#: Fraction of conditions (or genes) held out by the non-simulation kinds, as in GEARS.
_HOLDOUT_FRACTION = 0.1
#: The validation set is drawn from the training conditions with GEARS' fractions.
_VAL_GENE_FRACTION = 0.9


def split_perturbations(
    adata: AnnData,
    *,
    kind: SplitKind = "simulation",
    seed: int = 0,
    train_gene_fraction: float = 0.75,
    combo_seen2_train_fraction: float = 0.75,
    test_conditions: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    condition_key: str = CONDITION_KEY,
    key_added: str = SPLIT_KEY,
    copy: bool = False,
) -> AnnData | None:
    """Split the conditions (not the cells) into ``train``, ``val`` and ``test``.

    All cells of a condition share its set, and the control condition is always in ``train``.
    Sampling is without replacement and deterministic for a given ``seed``. The kinds are GEARS':

    ``"simulation"``
        The paper's split. A random ``train_gene_fraction`` of the perturbed genes are training
        genes; training holds their singles and a random ``combo_seen2_train_fraction`` of the
        combinations made only of training genes; everything else is tested.
    ``"simulation_single"``
        The same for single-gene screens: combinations of training genes all go to training.
    ``"single"``, ``"combo_seen0"``, ``"combo_seen1"``
        10% of the singly perturbed genes are test genes; their singles and every combination
        containing one are tested. GEARS differs only in which of those it reports (it drops the
        rest); scgears tests them all and labels each by subgroup, so the three train on the same
        conditions and differ in name only.
    ``"combo_seen2"``
        10% of the combinations are tested; all singles are trained on.
    ``"custom"``
        ``test_conditions`` is the test set (a list of labels), or a dict with ``"test"`` and
        optionally ``"val"`` lists; the remaining conditions are trained on.

    For the other kinds, ``test_conditions`` forces conditions into test: for ``"combo_seen2"``
    exactly those combinations (instead of a random draw); for the gene-based kinds every gene of
    those conditions becomes a test gene, in addition to the test genes drawn at random from the
    other genes (with ``seed``).

    The validation set is drawn from the training conditions by the same rule (GEARS' fractions
    0.9 / 0.9 for the simulation kinds, 10% otherwise). Each test condition is then put in a
    subgroup by the paper's rule: a gene is *seen* when its single perturbation is in ``train`` or
    ``val``; a test single is ``unseen_single`` and a test combination with ``k`` seen genes is
    ``combo_seen{k}``.

    Parameters
    ----------
    adata
        Annotated data with registered conditions.
    kind
        The split kind, see above.
    seed
        Seed of the random choices.
    train_gene_fraction
        Fraction of genes used for training (simulation kinds).
    combo_seen2_train_fraction
        Fraction of combinations of training genes used for training (``"simulation"``).
    test_conditions
        Conditions forced into test; the test set itself for ``"custom"``.
    condition_key
        Column of ``obs`` written by :func:`~scgears.pp.register_perturbations`.
    key_added
        Column of ``obs`` (categorical ``train``/``val``/``test``) and key of ``uns`` to write.
    copy
        Return a copy instead of writing in place.

    Returns
    -------
    ``None`` or a copy. ``uns[key_added]`` holds ``kind``, ``seed``, ``conditions`` (the conditions
    of each set), ``subgroups`` (test conditions per subgroup) and ``val_subgroups``.

    Examples
    --------
    >>> import scgears as sg
    >>> adata = sg.datasets.simulate_screen(n_genes=200, n_cells_per_condition=20, seed=0)
    >>> sg.pp.register_perturbations(adata, "perturbation_name")
    >>> sg.pp.split_perturbations(adata, kind="simulation", seed=1)
    >>> sorted(adata.obs["scgears_split"].unique())
    ['test', 'train', 'val']
    """
    check_copy(adata, copy, "split_perturbations")
    if kind not in _KINDS:
        raise ValueError(f"Unknown split kind {kind!r}; choose one of {', '.join(_KINDS)}.")
    for name, value in (
        ("train_gene_fraction", train_gene_fraction),
        ("combo_seen2_train_fraction", combo_seen2_train_fraction),
    ):
        if not 0 < value <= 1:
            raise ValueError(f"{name} must be in (0, 1], got {value}.")
    conditions = get_conditions(adata, condition_key)
    present = [c for c in conditions.categories if c != CONTROL and (conditions == c).any()]
    rng = np.random.default_rng(seed)
    forced = _forced(test_conditions, kind, present)

    train, test = _split_once(
        kind, present, rng, train_gene_fraction, combo_seen2_train_fraction, forced
    )
    if kind == "custom" and isinstance(test_conditions, Mapping) and "val" in test_conditions:
        val = sorted(_canonical_list(test_conditions["val"], present, "val"))
        both = sorted(set(val) & set(test))
        if both:
            raise ValueError(
                f"Conditions in both the 'test' and 'val' lists: {both[:10]}. Each condition "
                "belongs to one set: remove them from one of the lists."
            )
        train = sorted(set(train) - set(val))
    else:
        val_kind = "custom" if kind == "custom" else kind
        train, val = _split_once(
            val_kind, train, rng, _VAL_GENE_FRACTION, _VAL_GENE_FRACTION, set()
        )
    _check_sizes(kind, seed, present, train, val, test)

    seen = {condition_genes(c)[0] for c in train + val if len(condition_genes(c)) == 1}
    seen_train = {condition_genes(c)[0] for c in train if len(condition_genes(c)) == 1}
    assignment = {CONTROL: "train", **dict.fromkeys(train, "train"), **dict.fromkeys(val, "val")}
    assignment.update(dict.fromkeys(test, "test"))
    labels = pd.Series(np.asarray(conditions).astype(object)).map(assignment)
    if copy:
        adata = adata.copy()
    adata.obs[key_added] = pd.Categorical(labels.to_numpy(), categories=["train", "val", "test"])
    adata.uns[key_added] = {
        "kind": kind,
        "seed": int(seed),
        "conditions": {
            "train": np.array([CONTROL, *sorted(train)], dtype=object),
            "val": np.array(sorted(val), dtype=object),
            "test": np.array(sorted(test), dtype=object),
        },
        "subgroups": _subgroups(test, seen),
        "val_subgroups": _subgroups(val, seen_train),
    }
    logger.info(
        "Split %r (seed %d): %d train, %d val, %d test conditions (%s).",
        kind,
        seed,
        len(train) + 1,
        len(val),
        len(test),
        ", ".join(f"{k} {len(v)}" for k, v in adata.uns[key_added]["subgroups"].items()),
    )
    return adata if copy else None


def subgroup_of(condition: str, seen_genes: set[str]) -> str:
    """Subgroup of a held-out condition by the paper's rule (see :func:`split_perturbations`)."""
    genes = condition_genes(condition)
    if len(genes) == 1:
        return "unseen_single" if genes[0] not in seen_genes else "seen_single"
    return f"combo_seen{sum(g in seen_genes for g in genes)}"


def _subgroups(conditions: list[str], seen: set[str]) -> dict[str, np.ndarray]:
    groups: dict[str, list[str]] = {
        "unseen_single": [],
        "combo_seen0": [],
        "combo_seen1": [],
        "combo_seen2": [],
    }
    for c in sorted(conditions):
        groups.setdefault(subgroup_of(c, seen), []).append(c)
    return {k: np.array(v, dtype=object) for k, v in groups.items()}


def _canonical_list(values, present: list[str], what: str) -> set[str]:
    if isinstance(values, str):
        values = [values]
    canonical = {as_condition(v) for v in values}
    if CONTROL in canonical:
        raise ValueError(
            f"The control condition {CONTROL!r} is among the {what} conditions; the control always "
            "stays in train (every prediction is a change from it). Remove it from the list."
        )
    unknown = sorted(canonical - set(present))
    if unknown:
        raise ValueError(
            f"{what} conditions not found in the data: {unknown[:10]}. Use canonical labels "
            f"such as {present[:3]} (see obs['scgears_condition'])."
        )
    return canonical


def _forced(test_conditions, kind: str, present: list[str]) -> set[str]:
    if test_conditions is None:
        if kind == "custom":
            raise ValueError(
                "kind='custom' needs test_conditions: a list of test condition labels, or a dict "
                "with 'test' (and optionally 'val') lists."
            )
        return set()
    if isinstance(test_conditions, Mapping):
        if kind != "custom" or "test" not in test_conditions:
            raise ValueError(
                "A dict of test_conditions is only accepted with kind='custom' and needs a 'test' "
                "list."
            )
        return _canonical_list(test_conditions["test"], present, "test")
    return _canonical_list(test_conditions, present, "test")


def _split_once(
    kind: str,
    conditions: list[str],
    rng: np.random.Generator,
    gene_fraction: float,
    combo_fraction: float,
    forced: set[str],
) -> tuple[list[str], list[str]]:
    """Split ``conditions`` into (kept, held out) by one kind's rule."""
    conditions = sorted(conditions)
    singles = [c for c in conditions if len(condition_genes(c)) == 1]
    combos = [c for c in conditions if len(condition_genes(c)) > 1]
    rule = _RULES[kind]
    if rule == "custom":
        if forced:
            held = set(forced)
        else:
            n_held = max(1, int(len(conditions) * _HOLDOUT_FRACTION)) if len(conditions) > 1 else 0
            held = set(rng.choice(conditions, n_held, replace=False)) if n_held else set()
    elif rule == "test_combinations":
        if forced:
            held = set(forced)
        else:
            n_held = max(1, int(len(combos) * _HOLDOUT_FRACTION)) if len(combos) > 1 else 0
            held = set(rng.choice(combos, n_held, replace=False)) if n_held else set()
    else:
        forced_genes = {g for c in forced for g in condition_genes(c)}
        if rule == "simulation":
            genes = sorted({g for c in conditions for g in condition_genes(c)} - forced_genes)
            n_train = int(len(genes) * gene_fraction)
            train_genes = set(rng.choice(genes, n_train, replace=False)) if n_train else set()
            fraction = 1.0 if kind == "simulation_single" else combo_fraction
        else:  # test_genes
            genes = sorted({condition_genes(c)[0] for c in singles} - forced_genes)
            n_test = max(1, int(len(genes) * _HOLDOUT_FRACTION)) if genes else 0
            test_genes = set(rng.choice(genes, n_test, replace=False)) if n_test else set()
            train_genes = set(genes) - test_genes
            train_genes |= {g for c in combos for g in condition_genes(c)} - test_genes - set(genes)
            train_genes -= forced_genes
            fraction = 1.0
        all_train = [c for c in combos if set(condition_genes(c)) <= train_genes]
        n_keep = int(len(all_train) * fraction)
        kept_combos = set(rng.choice(all_train, n_keep, replace=False)) if n_keep else set()
        held = {c for c in singles if condition_genes(c)[0] not in train_genes}
        held |= {c for c in combos if c not in kept_combos}
    kept = [c for c in conditions if c not in held]
    return kept, sorted(held)


def _check_sizes(kind, seed, present, train, val, test) -> None:
    n_single = sum(len(condition_genes(c)) == 1 for c in present)
    n_genes = len({g for c in present for g in condition_genes(c)})
    empty = [name for name, part in (("train", train), ("val", val), ("test", test)) if not part]
    if not empty:
        return
    raise ValueError(
        f"Split {kind!r} (seed {seed}) leaves the {' and '.join(empty)} set(s) without any "
        f"perturbation: the data has {len(present)} perturbed conditions ({n_single} singles, "
        f"{len(present) - n_single} combinations, {n_genes} genes), giving {len(train)} train, "
        f"{len(val)} val and {len(test)} test conditions. Register more perturbations, change "
        "train_gene_fraction, or choose the sets yourself with kind='custom' and "
        "test_conditions={'test': [...], 'val': [...]}."
    )
