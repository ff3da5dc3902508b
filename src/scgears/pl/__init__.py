"""Plotting, scanpy style: every function takes ``ax``, ``show`` and ``save`` and returns the axes."""

__all__: list[str] = []
