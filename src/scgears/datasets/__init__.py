"""Datasets: a simulated screen with known ground truth, and loaders of published screens."""

__all__: list[str] = []
