"""Data shipped inside the package: the human gene -> GO table and the gene alias table.

Both come from Bioconductor's org.Hs.eg.db 3.16 as packaged by Debian (gene2go of 2022-09-12,
GO release 2022-07-01); ``scripts/build_go_table.py`` regenerates them and
``scgears/_data/README.md`` records versions and row counts. They are read once per process and
cached; the returned mappings are read-only because every caller shares them.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from types import MappingProxyType

GO_FILE = "human_gene2go.tsv.gz"
ALIAS_FILE = "human_gene_aliases.tsv.gz"
GO_SOURCE = "org.Hs.eg.db 3.16 (NCBI gene2go 2022-09-12, GO 2022-07-01)"


def _read_rows(name: str) -> list[list[str]]:
    """Rows (header dropped) of a shipped gzip TSV, as plain strings.

    Plain parsing on purpose: pandas would turn gene symbols such as ``NA`` into missing values.
    """
    data = resources.files("scgears").joinpath("_data", name).read_bytes()
    with io.TextIOWrapper(gzip.GzipFile(fileobj=io.BytesIO(data)), encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    return [line.split("\t") for line in lines[1:] if line]


@lru_cache(maxsize=1)
def go_annotations() -> Mapping[str, frozenset[str]]:
    """Human gene symbol -> set of GO term ids (BP, MF and CC; all evidence codes).

    20,728 symbols with at least one direct annotation. This is the default knowledge source of
    :func:`scgears.pp.perturbation_graph`.

    Returns
    -------
    A read-only mapping from current HGNC/NCBI symbol to a frozenset of ids like ``"GO:0006397"``.

    Examples
    --------
    >>> from scgears._resources import go_annotations
    >>> go = go_annotations()
    >>> "GO:0006397" in go["A1CF"]
    True
    """
    table = {symbol: frozenset(ids.split(";")) for symbol, ids in _read_rows(GO_FILE)}
    return MappingProxyType(table)


@lru_cache(maxsize=1)
def gene_aliases() -> Mapping[str, str]:
    """Alias or previous human gene symbol -> current symbol.

    Only aliases that name exactly one current gene are kept, and no current symbol is ever
    mapped to another one (the build script drops both kinds; the checks here guard against a
    hand-edited table).

    Returns
    -------
    A read-only mapping, e.g. ``"ELMSAN1" -> "MIDEAS"``.

    Examples
    --------
    >>> from scgears._resources import gene_aliases
    >>> gene_aliases()["ELMSAN1"]
    'MIDEAS'
    """
    current = go_annotations()
    targets: dict[str, set[str]] = {}
    for alias, symbol in _read_rows(ALIAS_FILE):
        targets.setdefault(alias, set()).add(symbol)
    table = {
        alias: next(iter(symbols))
        for alias, symbols in targets.items()
        if len(symbols) == 1 and alias not in current
    }
    return MappingProxyType(table)
