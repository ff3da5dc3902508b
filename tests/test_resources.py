"""The GO and alias tables shipped inside the package."""

from __future__ import annotations

import time
from importlib import resources

import pandas as pd
import pytest

from scgears import _resources


def test_shipped_go_table_equals_the_debian_extraction(shared_data):
    table = pd.read_csv(
        shared_data / "go" / "human_gene2go_orgHsEgDb_3.16.tsv.gz",
        sep="\t",
        usecols=["symbol", "go_id"],
        keep_default_na=False,
    )
    expected = {s: frozenset(ids) for s, ids in table.groupby("symbol")["go_id"]}
    shipped = _resources.go_annotations()
    assert len(shipped) == len(expected) == 20_728
    assert dict(shipped) == expected


def test_aliases_map_old_symbols_and_never_shadow_current_ones(shared_data):
    aliases = _resources.gene_aliases()
    assert aliases["ELMSAN1"] == "MIDEAS"
    assert aliases["C19orf26"] == "CBARP"
    table = pd.read_csv(
        shared_data / "go" / "human_gene_aliases_orgHsEgDb_3.16.tsv.gz",
        sep="\t",
        keep_default_na=False,
    )
    symbols = set(table["symbol"])
    ambiguous = table.groupby("alias_symbol")["symbol"].nunique()
    ambiguous = set(ambiguous.index[ambiguous > 1])
    assert not set(aliases) & (symbols | ambiguous)
    assert not set(aliases) & set(_resources.go_annotations())
    # every remaining unambiguous old name is there
    unambiguous = table[~table["alias_symbol"].isin(ambiguous | symbols)]
    pairs = dict(zip(unambiguous["alias_symbol"], unambiguous["symbol"], strict=True))
    ids = pd.read_csv(
        shared_data / "go" / "human_gene_ids_orgHsEgDb_3.16.tsv.gz", sep="\t", keep_default_na=False
    )
    current = set(ids["symbol"])
    assert dict(aliases) == {a: s for a, s in pairs.items() if a not in current}


def test_tables_are_cached_read_only_and_fast():
    _resources.go_annotations.cache_clear()
    _resources.gene_aliases.cache_clear()
    start = time.perf_counter()
    go = _resources.go_annotations()
    aliases = _resources.gene_aliases()
    assert time.perf_counter() - start < 3  # < 1 s on an idle core; slack for shared CI machines
    assert _resources.go_annotations() is go
    assert _resources.gene_aliases() is aliases
    with pytest.raises(TypeError):
        go["NEW"] = frozenset()  # type: ignore[index]


def test_data_files_ship_inside_the_package():
    data = resources.files("scgears").joinpath("_data")
    names = {p.name for p in data.iterdir()}
    assert {_resources.GO_FILE, _resources.ALIAS_FILE, "README.md"} <= names
    readme = data.joinpath("README.md").read_text()
    assert "20,728 gene symbols" in readme
    assert "3.16.0-1" in readme
