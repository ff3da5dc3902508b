"""Several GEARS models trained with different seeds: their mean, and their disagreement."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from anndata import AnnData

from .._profiles import make_profiles
from ._data import SplitStatistics
from ._gears import GEARS
from ._prior import PriorNoise, prior_noise

_NOISE_FILE = "prior_noise.npz"

logger = logging.getLogger(__name__)


class GEARSEnsemble:
    """An ensemble of :class:`~scgears.model.GEARS` models that differ only in their seed.

    Each member is a GEARS model on the same registered AnnData with the same settings, whose
    weights are initialised and trained with its own seed (``seed + k`` for member ``k``). The
    ensemble's prediction is the members' mean profile.

    ``layers["uncertainty"]`` is, per gene, ``sqrt(v_members + v_prior)``: ``v_members`` the
    members' variance (ddof 1), the disagreement of the network's trainings, and ``v_prior`` what
    the measured prior itself leaves unknown (``PriorNoise``): the sampling variance of each
    measured single used, the spread of the single effects across genes for each gene never
    measured, and the spread of the training pairs' departures from additivity for a combination.
    The members share one architecture and the same few training conditions, so their spread
    need not cover what the data never showed; the prior's part says how much was actually
    measured. ``obs["uncertainty"]`` is its mean over
    the genes some training cell expresses: a per-condition summary to rank predictions by
    confidence; ``obs["uncertainty_members"]`` the members' part alone. It is not a calibrated
    interval: see ``docs/model.md`` for how it ranked the actual errors on the Norman benchmark.
    With one member there is no spread, and the uncertainty is NaN.

    Parameters
    ----------
    adata
        AnnData registered with :meth:`GEARS.setup_anndata`.
    n_models
        Number of members.
    **gears_kwargs
        Arguments of :class:`~scgears.model.GEARS`, the same for every member.

    Examples
    --------
    >>> import scgears as sg
    >>> adata = sg.datasets.simulate_screen(n_genes=200, n_cells_per_condition=20, seed=0)
    >>> sg.pp.register_perturbations(adata, "perturbation_name")
    >>> sg.pp.rank_perturbation_genes(adata)
    >>> sg.pp.split_perturbations(adata, seed=1)
    >>> sg.pp.coexpression_graph(adata)
    >>> sg.pp.perturbation_graph(adata)
    >>> sg.model.GEARS.setup_anndata(adata)
    >>> ensemble = sg.model.GEARSEnsemble(adata, n_models=3)
    >>> ensemble.train(max_epochs=2)  # doctest: +SKIP
    >>> pred = ensemble.predict(["KLF1"])  # doctest: +SKIP
    >>> pred.obs["uncertainty"]  # doctest: +SKIP
    """

    def __init__(self, adata: AnnData, n_models: int = 5, **gears_kwargs):
        if not isinstance(n_models, int | np.integer) or n_models < 1:
            raise ValueError(f"n_models must be a positive integer, got {n_models!r}.")
        self.adata = adata
        self.n_models = int(n_models)
        self.gears_kwargs = gears_kwargs
        self.models: list[GEARS] = []
        self._build(adata)
        self.prior_noise: PriorNoise | None = self._prior_noise(adata)

    def _prior_noise(self, adata: AnnData | None) -> PriorNoise | None:
        """What the measured prior leaves unknown, from the training cells' statistics."""
        if adata is None:
            return None
        model = self.models[0]
        statistics = model._statistics
        if statistics is None:
            args = model.adata_manager.registry["setup_args"]
            statistics = SplitStatistics.from_anndata(
                adata,
                condition_key=args["condition_key"],
                split_key=args["split_key"],
                layer=args["layer"],
            )
        return prior_noise(statistics, model.graphs.seen_genes)

    def _build(self, adata: AnnData) -> None:
        import torch

        self.models = []
        for k in range(self.n_models):
            # members differ from their first weights on: each is initialised with its own seed
            with torch.random.fork_rng():
                torch.manual_seed(k)
                self.models.append(GEARS(adata, **self.gears_kwargs))

    @property
    def is_trained_(self) -> bool:
        """Whether every member is trained."""
        return all(m.is_trained_ for m in self.models)

    def train(self, max_epochs: int = 20, *, seed: int = 0, **train_kwargs) -> None:
        """Train every member, member ``k`` with ``seed + k``.

        Other arguments are those of :meth:`GEARS.train`.

        Examples
        --------
        >>> ensemble.train(max_epochs=20)  # doctest: +SKIP
        """
        for k, model in enumerate(self.models):
            logger.info("Training ensemble member %d of %d.", k + 1, self.n_models)
            model.train(max_epochs=max_epochs, seed=seed + k, **train_kwargs)

    def predict(
        self, perturbations: Sequence[str | Sequence[str]] | str, *, batch_size: int = 512
    ) -> AnnData:
        """Predict each perturbation: the members' mean profile and their spread.

        Parameters
        ----------
        perturbations, batch_size
            As :meth:`GEARS.predict`.

        Returns
        -------
        A profile AnnData as :meth:`GEARS.predict` returns (``X`` the mean of the members' valid
        profiles, so never negative; ``layers["delta"]``; the same ``obs`` columns), with
        ``layers["uncertainty"]`` the members' and the prior's standard deviation per gene (see
        :class:`GEARSEnsemble`), ``obs["uncertainty"]`` its mean over the expressed genes and
        ``obs["uncertainty_members"]`` that of the members' part alone (NaN with one member).
        ``uns["scgears_profile"]["n_models"]`` records the ensemble's size.

        Examples
        --------
        >>> pred = ensemble.predict([["KLF1"], ["CBL", "CNN1"]])  # doctest: +SKIP
        >>> pred.obs["uncertainty"].sort_values()  # doctest: +SKIP
        """
        predictions = [m.predict(perturbations, batch_size=batch_size) for m in self.models]
        first = predictions[0]
        stack = np.stack([np.asarray(p.X, dtype=np.float64) for p in predictions])
        mean = stack.mean(axis=0)
        # one member has no spread: NaN, not an invented zero
        members = stack.var(axis=0, ddof=1) if self.n_models > 1 else np.full_like(mean, np.nan)
        expressed = self.models[0].module.expressed_genes.detach().cpu().numpy()
        prior = np.zeros_like(mean)
        if self.prior_noise is not None:
            prior = self.prior_noise.variance(list(first.obs_names)) * expressed[None, :]
        spread = np.sqrt(members + prior)

        def summary(values: np.ndarray) -> np.ndarray:
            if not expressed.any():
                return np.full(len(values), np.nan)
            return values[:, expressed].mean(axis=1)

        obs = first.obs.drop(columns=["condition", "n_perturbed_genes"]).copy()
        obs["uncertainty"] = summary(spread)
        obs["uncertainty_members"] = summary(np.sqrt(members))
        out = make_profiles(
            list(first.obs_names),
            first.var_names,
            mean,
            np.asarray(first.var["control_mean"]),
            source="GEARSEnsemble",
            uncertainty=spread,
            obs=obs,
        )
        out.uns["scgears_profile"]["n_models"] = self.n_models
        return out

    def save(self, dir_path: str | Path, *, overwrite: bool = False, **save_kwargs) -> None:
        """Save every member in ``dir_path/member_<k>`` (see :meth:`GEARS.save`).

        Examples
        --------
        >>> ensemble.save("ensemble/")  # doctest: +SKIP
        """
        dir_path = Path(dir_path)
        if not self.is_trained_:
            raise RuntimeError("Train the ensemble before saving it: ensemble.train().")
        for k, model in enumerate(self.models):
            model.save(dir_path / f"member_{k}", overwrite=overwrite, **save_kwargs)
        if self.prior_noise is not None:
            noise = self.prior_noise
            np.savez(
                dir_path / _NOISE_FILE,
                genes=noise.genes,
                single_noise=noise.single_noise,
                single_spread=noise.single_spread,
                interaction=noise.interaction,
            )

    @classmethod
    def load(cls, dir_path: str | Path, adata: AnnData | None = None) -> GEARSEnsemble:
        """Load an ensemble saved by :meth:`save`.

        Examples
        --------
        >>> ensemble = sg.model.GEARSEnsemble.load("ensemble/", adata)  # doctest: +SKIP
        """
        dir_path = Path(dir_path)
        folders = sorted(dir_path.glob("member_*"), key=lambda p: int(p.name.split("_")[1]))
        if not folders:
            raise FileNotFoundError(
                f"No ensemble members (member_0, member_1, ...) in {dir_path}: save one with "
                "GEARSEnsemble.save."
            )
        models = [GEARS.load(str(folder), adata=adata) for folder in folders]
        ensemble = cls.__new__(cls)
        ensemble.adata = models[0].adata
        ensemble.n_models = len(models)
        ensemble.gears_kwargs = {}
        ensemble.models = models
        ensemble.prior_noise = None
        if (dir_path / _NOISE_FILE).is_file():
            with np.load(dir_path / _NOISE_FILE) as saved:
                ensemble.prior_noise = PriorNoise(**{k: saved[k] for k in saved.files})
        else:
            ensemble.prior_noise = ensemble._prior_noise(ensemble.adata)
        return ensemble

    def __repr__(self) -> str:
        status = "trained" if self.is_trained_ else "not trained"
        return f"GEARSEnsemble of {self.n_models} GEARS models. Status: {status}."
