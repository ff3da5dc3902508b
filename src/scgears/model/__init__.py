"""Models: GEARS in scvi-tools form."""

__all__: list[str] = []
