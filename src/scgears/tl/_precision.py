"""Precision@k of predicted genetic-interaction rankings against measured subtypes."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from anndata import AnnData

from .._constants import GI_KEY
from .._gi_rules import ADDITIVE, GI_THRESHOLDS, NONADDITIVE_SUBTYPES, SUBTYPE_RULES, paper_call

logger = logging.getLogger(__name__)

#: subtype -> (score, true-label rule on the measured score, which predicted end is ranked first),
#: read from the one table of subtype rules (``scgears._gi_rules``), non-additive subtypes first.
PRECISION_RULES: dict[str, tuple[str, str, str]] = {
    name: (
        SUBTYPE_RULES[name].score,
        SUBTYPE_RULES[name].paper_rule,
        SUBTYPE_RULES[name].ranked_first,
    )
    for name in (*NONADDITIVE_SUBTYPES, ADDITIVE)
}


def gi_precision(
    predicted_gi: pd.DataFrame | AnnData,
    measured_gi: pd.DataFrame | AnnData,
    k: int = 10,
    *,
    n_random: int = 1000,
    seed: int = 0,
    thresholds: dict[str, float] | None = None,
    truth: str = "paper",
) -> pd.DataFrame:
    """Precision@k of each GI subtype: how many top-ranked predicted pairs carry it in the data.

    As in the GEARS paper (GEARS_misc ``get_prec_atk``), over the pairs scored in both tables:

    ============  ==========  =========================  ==============================
    subtype       score       true label (measured)      predicted pairs ranked first
    ============  ==========  =========================  ==============================
    synergy       mag         mag > 1.15                 highest predicted mag
    suppression   mag         mag < 1.0                  lowest predicted mag
    neomorphism   corr_fit    corr_fit < 0.88            lowest predicted corr_fit
    redundancy    dcor        dcor > 0.85                highest predicted dcor
    epistasis     eq_contr    eq_contr < 0.28            lowest predicted eq_contr
    additive      mag         abs(mag - 1) < 0.25        smallest abs(predicted mag - 1)
    ============  ==========  =========================  ==============================

    ``precision = |top-k predicted pairs that are true| / k``. The random baseline beside it is
    the mean precision of ``n_random`` random rankings of the same pairs (its expectation is
    ``n_true / n_pairs``). Ties in the predicted score are broken by pair label, so the result is
    deterministic (GEARS breaks them by a seeded shuffle). Pairs whose predicted or measured score
    is NaN are left out of that subtype's ranking.

    Parameters
    ----------
    predicted_gi, measured_gi
        Tables of :func:`~scgears.tl.genetic_interactions` (or AnnData holding them in
        ``uns["scgears_gi"]``), for the predicted and for the measured profiles.
    k
        How many top-ranked pairs are called.
    n_random
        Random rankings averaged for the baseline.
    seed
        Seed of the random rankings.
    thresholds
        Overrides of the true-label thresholds, by subtype name.
    truth
        ``"paper"`` (default): a measured pair carries a subtype when its score passes the
        paper's threshold (the table above), as in GEARS. ``"subtype"``: when its calibrated
        call (``subtype`` column of :func:`~scgears.tl.genetic_interactions`) is that subtype;
        pairs without a call are left out.

    Returns
    -------
    One row per subtype: ``subtype``, ``score``, ``k``, ``precision``, ``random_precision``,
    ``n_true`` (measured pairs with the subtype) and ``n_pairs`` (pairs ranked).

    Examples
    --------
    >>> import pandas as pd
    >>> import scgears as sg
    >>> measured = pd.DataFrame({"mag": [1.3, 1.2, 0.9, 0.5], "dcor": 0.5, "corr_fit": 0.9,
    ...                          "eq_contr": 0.5}, index=["A+B", "A+C", "B+C", "C+D"])
    >>> predicted = measured.assign(mag=[1.5, 0.8, 1.4, 0.1])
    >>> table = sg.tl.gi_precision(predicted, measured, k=2)
    >>> synergy = table.set_index("subtype").loc["synergy"]
    >>> print(synergy["precision"], synergy["n_true"])
    0.5 2
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}.")
    if truth not in ("paper", "subtype"):
        raise ValueError(f"truth must be 'paper' or 'subtype', got {truth!r}.")
    if n_random < 1:
        raise ValueError(f"n_random must be at least 1, got {n_random}.")
    predicted = _as_table(predicted_gi, "predicted_gi")
    measured = _as_table(measured_gi, "measured_gi")
    cut = dict(GI_THRESHOLDS)
    if thresholds:
        unknown = sorted(set(thresholds) - set(cut))
        if unknown:
            raise ValueError(f"Unknown subtypes in thresholds: {unknown}; known: {sorted(cut)}.")
        cut.update(thresholds)
    shared = predicted.index.intersection(measured.index).sort_values()
    if len(shared) == 0:
        raise ValueError(
            "No pair is scored in both tables: compare GI tables of the same pairs "
            f"(predicted e.g. {list(predicted.index[:3])}, "
            f"measured e.g. {list(measured.index[:3])})."
        )
    rng = np.random.default_rng(seed)
    rows = []
    for subtype, (score, rule, _) in PRECISION_RULES.items():
        for table, name in ((predicted, "predicted_gi"), (measured, "measured_gi")):
            if score not in table.columns:
                raise KeyError(
                    f"{name} has no {score!r} column: pass genetic_interactions' output."
                )
        pred = predicted.loc[shared, score].astype(float)
        if truth == "subtype":
            if "subtype" not in measured.columns:
                raise KeyError(
                    "measured_gi has no 'subtype' column: score it with "
                    "sg.tl.genetic_interactions (calibrated calls) or use truth='paper'."
                )
            true = measured.loc[shared, "subtype"].astype(object)
        else:
            true = measured.loc[shared, score].astype(float)
        valid = pred.notna() & true.notna()
        pred, true = pred[valid], true[valid]
        if len(pred) < k:
            raise ValueError(
                f"Only {len(pred)} pairs have a {score!r} score in both tables, fewer than "
                f"k={k}: lower k."
            )
        if truth == "subtype":
            is_true = (true == subtype).to_numpy()
        else:
            is_true = np.asarray(paper_call(true.to_numpy(), rule, cut[subtype]))
        ranking = _ranking(pred.to_numpy(), pred.index.to_numpy(), subtype)
        precision = is_true[ranking[:k]].mean()
        # random rankings: the first k of a random permutation is a random k-subset
        draws = rng.random((n_random, len(pred))).argpartition(k - 1, axis=1)[:, :k]
        random_precision = is_true[draws].mean(axis=1).mean()
        rows.append(
            {
                "subtype": subtype,
                "score": score,
                "k": k,
                "precision": float(precision),
                "random_precision": float(random_precision),
                "n_true": int(is_true.sum()),
                "n_pairs": len(pred),
            }
        )
    return pd.DataFrame(rows)


def _as_table(data, name: str) -> pd.DataFrame:
    if isinstance(data, AnnData):
        if GI_KEY not in data.uns:
            raise KeyError(
                f"{name} has no uns[{GI_KEY!r}]: run `sg.tl.genetic_interactions` on it first."
            )
        data = data.uns[GI_KEY]
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"{name} must be a DataFrame of GI scores, got {type(data).__name__}.")
    if data.index.has_duplicates:
        raise ValueError(
            f"{name} has duplicated pairs: {list(data.index[data.index.duplicated()][:5])}."
        )
    return data


def _ranking(pred: np.ndarray, labels: np.ndarray, subtype: str) -> np.ndarray:
    """Positions of the pairs, most confident call of ``subtype`` first; ties by label."""
    direction = PRECISION_RULES[subtype][2]
    if direction == "highest":
        key = -pred
    elif direction == "lowest":
        key = pred
    else:
        key = np.abs(pred - 1.0)
    return np.lexsort((labels, key))
