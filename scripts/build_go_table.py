"""Regenerate the human GO table and alias table shipped in ``src/scgears/_data``.

The source is the Debian package ``r-bioc-org.hs.eg.db`` (Bioconductor's org.Hs.eg.db, Artistic-2.0;
GO annotations are CC BY 4.0). The script downloads the ``.deb`` (with ``apt-get download`` when
available, else from deb.debian.org with its SHA256 checked), unpacks it with ``dpkg-deb -x``, reads
``extdata/org.Hs.eg.sqlite`` with :mod:`sqlite3` and writes:

- ``human_gene2go.tsv.gz``: ``symbol<TAB>go_ids``, one row per current gene symbol with at least one
  direct GO annotation (BP, MF and CC; every evidence code), its GO ids sorted, deduplicated and
  joined by ``;``. Genes sharing a symbol (a handful of Entrez ids) get the union of their terms.
- ``human_gene_aliases.tsv.gz``: ``alias<TAB>symbol``, one row per alias that names exactly one
  current gene and is not itself a current symbol (so an alias never shadows a real gene).
- ``README.md``: source versions, checksums and row counts.

Run from the repository root::

    python scripts/build_go_table.py            # download into a temporary folder
    python scripts/build_go_table.py --deb-dir /tmp/godeb   # reuse downloaded .deb files
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import shutil
import sqlite3
import subprocess
import tempfile
import urllib.request
from collections import defaultdict
from pathlib import Path

PACKAGE = "r-bioc-org.hs.eg.db"
VERSION = "3.16.0-1"
DEB_NAME = f"{PACKAGE}_{VERSION}_all.deb"
DEB_URL = f"https://deb.debian.org/debian/pool/main/r/{PACKAGE}/{DEB_NAME}"
DEB_SHA256 = "0f61810d35b858915b1a9787d8dcab08b7e164c14c20a9e1d86eb9837308c2c2"
SQLITE_PATH = "usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite"
OUT_DIR = Path(__file__).resolve().parents[1] / "src" / "scgears" / "_data"
GO_FILE = "human_gene2go.tsv.gz"
ALIAS_FILE = "human_gene_aliases.tsv.gz"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_deb(deb_dir: Path) -> Path:
    """Return the verified ``.deb`` in ``deb_dir``, downloading it first when absent."""
    deb = deb_dir / DEB_NAME
    if not deb.exists() and shutil.which("apt-get"):
        subprocess.run(["apt-get", "download", f"{PACKAGE}={VERSION}"], cwd=deb_dir, check=False)
    if not deb.exists():
        print(f"downloading {DEB_URL}")
        urllib.request.urlretrieve(DEB_URL, deb)
    found = sha256(deb)
    if found != DEB_SHA256:
        raise RuntimeError(f"{deb}: SHA256 {found} differs from the expected {DEB_SHA256}")
    return deb


def unpack(deb: Path, into: Path) -> Path:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True)
    return into / SQLITE_PATH


def read_gene2go(con: sqlite3.Connection) -> dict[str, set[str]]:
    """Symbol -> set of directly annotated GO ids over the three ontologies."""
    gene2go: dict[str, set[str]] = defaultdict(set)
    for table in ("go_bp", "go_mf", "go_cc"):
        rows = con.execute(f"SELECT g.symbol, t.go_id FROM {table} t JOIN gene_info g USING (_id)")
        for symbol, go_id in rows:
            gene2go[symbol].add(go_id)
    return gene2go


def read_aliases(con: sqlite3.Connection) -> dict[str, str]:
    """Unambiguous alias -> current symbol, never mapping a symbol that is itself current."""
    current = {s for (s,) in con.execute("SELECT symbol FROM gene_info")}
    targets: dict[str, set[str]] = defaultdict(set)
    rows = con.execute("SELECT a.alias_symbol, g.symbol FROM alias a JOIN gene_info g USING (_id)")
    for alias, symbol in rows:
        if alias != symbol:
            targets[alias].add(symbol)
    return {
        alias: next(iter(symbols))
        for alias, symbols in targets.items()
        if len(symbols) == 1 and alias not in current
    }


def metadata(con: sqlite3.Connection) -> dict[str, str]:
    return dict(con.execute("SELECT name, value FROM metadata"))


def write_tsv(path: Path, header: str, rows: list[str]) -> None:
    # mtime=0 keeps the gzip bytes identical across runs of the script.
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(("\n".join([header, *rows]) + "\n").encode())


def write_readme(path: Path, meta: dict[str, str], n_genes: int, n_pairs: int, n_alias: int):
    text = f"""# Data shipped with scgears

Regenerate with `python scripts/build_go_table.py` (from the repository root). Do not edit by hand.

Source: Debian package `{PACKAGE}` {VERSION} (Bioconductor org.Hs.eg.db 3.16.0, Artistic-2.0;
Gene Ontology annotations CC BY 4.0), file `{DEB_NAME}`, SHA256 `{DEB_SHA256}`,
table `extdata/org.Hs.eg.sqlite`.

- Entrez Gene / gene2go date: {meta.get("GOEGSOURCEDATE", "?")}
- Gene Ontology release: {meta.get("GOSOURCEDATE", "?")} ({meta.get("GOSOURCEURL", "?")})

Files:

- `{GO_FILE}`: columns `symbol`, `go_ids`. {n_genes:,} gene symbols, {n_pairs:,} distinct
  (symbol, GO id) pairs: direct annotations from `go_bp`, `go_mf`, `go_cc`, every evidence code,
  GO ids joined by `;`.
- `{ALIAS_FILE}`: columns `alias`, `symbol`. {n_alias:,} aliases (previous symbols and synonyms)
  that name exactly one current gene and are not themselves a current symbol.

Loaded by `scgears._resources.go_annotations()` and `scgears._resources.gene_aliases()`.
"""
    path.write_text(text)


def build(deb_dir: Path, out_dir: Path) -> None:
    deb = fetch_deb(deb_dir)
    with tempfile.TemporaryDirectory() as tmp:
        con = sqlite3.connect(unpack(deb, Path(tmp)))
        gene2go = read_gene2go(con)
        aliases = read_aliases(con)
        meta = metadata(con)
        con.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    go_rows = [f"{s}\t{';'.join(sorted(ids))}" for s, ids in sorted(gene2go.items())]
    write_tsv(out_dir / GO_FILE, "symbol\tgo_ids", go_rows)
    alias_rows = [f"{a}\t{s}" for a, s in sorted(aliases.items())]
    write_tsv(out_dir / ALIAS_FILE, "alias\tsymbol", alias_rows)
    n_pairs = sum(len(ids) for ids in gene2go.values())
    write_readme(out_dir / "README.md", meta, len(gene2go), n_pairs, len(aliases))
    print(f"{len(gene2go)} genes, {n_pairs} (gene, GO id) pairs, {len(aliases)} aliases")
    for name in (GO_FILE, ALIAS_FILE):
        print(f"{out_dir / name}: {(out_dir / name).stat().st_size / 1e6:.2f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deb-dir", type=Path, help="folder holding (or to receive) the .deb")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    if args.deb_dir is not None:
        args.deb_dir.mkdir(parents=True, exist_ok=True)
        build(args.deb_dir, args.out_dir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            build(Path(tmp), args.out_dir)


if __name__ == "__main__":
    main()
