"""Tools: evaluation, baselines and genetic-interaction analysis of measured and predicted profiles."""

__all__: list[str] = []
