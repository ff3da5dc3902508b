"""Placeholder replaced by the perturbation-graph implementation."""


def perturbation_graph(*args, **kwargs):  # noqa: D103
    raise NotImplementedError
