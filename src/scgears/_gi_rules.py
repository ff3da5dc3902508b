"""The one table of genetic-interaction subtypes that every part of scgears reads.

``sg.tl.genetic_interactions`` (the calibrated ``subtype`` call and the paper's threshold calls),
``sg.tl.gi_precision`` (which score ranks which subtype), ``sg.pl.gi_map`` / ``sg.pl.interaction``
(colours and markers) and the simulator (which subtypes it plants) all read :data:`SUBTYPE_RULES`.
"""

from __future__ import annotations

from dataclasses import dataclass

ADDITIVE = "additive"


@dataclass(frozen=True)
class SubtypeRule:
    """What a subtype means, how the paper called it, and how scgears draws it."""

    name: str
    #: The pair's double, in words (Norman et al. 2019).
    meaning: str
    #: GEARS score of the paper's threshold call and of precision@k's ranking.
    score: str
    #: Paper call: ``"above"`` / ``"below"`` the threshold, or ``"near_one"`` (``|score - 1|``).
    paper_rule: str
    #: Threshold of the paper (GEARS_misc ``fig_utils``), read as :data:`GI_THRESHOLDS`.
    paper_threshold: float
    #: Which end of the predicted score precision@k ranks first.
    ranked_first: str
    #: Colour of the subtype in the maps (Okabe-Ito, colour-blind safe); additive is neutral.
    color: str
    #: Marker of the subtype in ``sg.pl.gi_map``.
    marker: str


SUBTYPE_RULES: dict[str, SubtypeRule] = {
    rule.name: rule
    for rule in (
        SubtypeRule(
            ADDITIVE,
            "the sum of the two singles' effects",
            "mag",
            "near_one",
            0.25,
            "closest_to_one",
            "#f0f0f0",
            "s",
        ),
        SubtypeRule(
            "synergy",
            "stronger than the sum of the singles, in their direction",
            "mag",
            "above",
            1.15,
            "highest",
            "#d55e00",
            "P",
        ),
        SubtypeRule(
            "suppression",
            "weaker than the sum of the singles, both still contributing",
            "mag",
            "below",
            1.0,
            "lowest",
            "#0072b2",
            "v",
        ),
        SubtypeRule(
            "neomorphism",
            "changes genes that neither single explains",
            "corr_fit",
            "below",
            0.88,
            "lowest",
            "#e69f00",
            "*",
        ),
        SubtypeRule(
            "redundancy",
            "the singles do the same thing and the double looks like either",
            "dcor",
            "above",
            0.85,
            "highest",
            "#009e73",
            "o",
        ),
        SubtypeRule(
            "epistasis",
            "one gene masks the other: the double looks like the dominant single",
            "eq_contr",
            "below",
            0.28,
            "lowest",
            "#000000",
            "^",
        ),
    )
}

#: Every subtype, additive first; the categories of the ``subtype`` column.
SUBTYPES: tuple[str, ...] = tuple(SUBTYPE_RULES)
#: The five non-additive subtypes, in the order the simulator plants them.
NONADDITIVE_SUBTYPES: tuple[str, ...] = SUBTYPES[1:]
#: The paper's thresholds by subtype.
GI_THRESHOLDS: dict[str, float] = {k: r.paper_threshold for k, r in SUBTYPE_RULES.items()}


def paper_call(score, rule: str, threshold: float):
    """The paper's threshold call on a score (array or Series); NaN scores call nothing."""
    if rule == "above":
        return score > threshold
    if rule == "below":
        return score < threshold
    return abs(score - 1.0) < threshold


# Calibrated calls (``genetic_interactions``' ``subtype``). Each pair is compared with its own
# additive null (the same pair with the non-additive part removed, re-scored with the pair's cell
# noise); a subtype is called when the pair differs from that null both significantly (beyond
# ``Z_CRITICAL`` null standard deviations) and by at least the effect size below. docs/metrics.md
# explains the rules and why.

#: Standard deviations of the additive null beyond which a difference is significant (two-sided
#: p of about 0.003 per test).
Z_CRITICAL = 3.0
#: One-sided z beyond which new variance is significant for neomorphism. New variance is one-sided
#: (only a positive residual is new) and its minimum effect (``MIN_NEW_VARIANCE``) keeps additive
#: pairs out: on planted screens additive pairs stay under it whatever their z, while milder
#: neomorphisms at 50-100 cells reach z of only 2-3.
Z_NEW = 1.645
#: One-sided z beyond which the double's scale is past the minimum effect (95%): a pair is called
#: synergy or suppression only when its scale is beyond the minimum change with that
#: confidence, so pairs that are near-additive but measured precisely stay additive.
Z_MARGIN = 1.645
#: Smallest relative decrease of the double's scale against the sum of the singles that counts as
#: suppression / redundancy (``< 1 / (1 + MIN_SCALE_CHANGE)``), and the largest share of the
#: dominant gene in an epistatic pair (``<= 1 + MIN_SCALE_CHANGE``). Wider than the increase:
#: saturating responses make additive pairs of a screen sub-additive by up to 0.2-0.3.
MIN_SCALE_CHANGE = 0.2
#: Smallest relative increase of the double's scale that counts as synergy (``> 1 + it``):
#: additive pairs of planted screens stay below 1.07-1.10 (99th percentile), synergies of 1.3x
#: show as 1.2-1.3.
MIN_SCALE_INCREASE = 0.1
#: Smallest share of the double's variance, beyond the null's, that no fit of the singles explains
#: for neomorphism (additive pairs of planted screens: 99th percentile 0.03-0.06).
MIN_NEW_VARIANCE = 0.075
#: A pair both scaled (synergy / suppression) and with new variance is neomorphism only when its
#: new variance exceeds this many times its departure along the singles' sum (same units): a
#: synergy through a saturating network is amplified unevenly, leaving a residual of up to 6
#: times its departure along the sum, while planted neomorphisms have none along it.
NEW_OVER_ALONG = 8.0
#: Epistasis: the masked gene's normalised coefficient is below this fraction of the dominant's.
MASKED_RATIO = 0.5
#: Redundancy: singles this similar (bias-corrected distance correlation) are one effect.
SIMILAR_SINGLES = 0.6

#: Screen reference: the calls compare a pair's scale with the median scale of the screen's
#: additive pairs when at least this many pairs are scored and called additive against 1 ...
MIN_REFERENCE_PAIRS = 20
#: ... and that median is bounded to ``1 +- MAX_REFERENCE_SHIFT``.
MAX_REFERENCE_SHIFT = 0.2
