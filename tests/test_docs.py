"""The documentation builds offline with warnings as errors, and documents every public name."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import scgears as sg

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DOC_PACKAGES = ("sphinx", "myst_nb", "sphinx_book_theme", "sphinx_autodoc_typehints")
MISSING = [name for name in DOC_PACKAGES if importlib.util.find_spec(name) is None]
needs_sphinx = pytest.mark.skipif(
    bool(MISSING),
    reason=f"documentation packages not installed ({', '.join(MISSING)}): pip install -e '.[doc]'",
)


def _load_conf():
    spec = importlib.util.spec_from_file_location("scgears_docs_conf", DOCS / "conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    return conf


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory) -> Path:
    """Build the HTML docs once, as the README and Read the Docs do: ``-W``, no network."""
    out = tmp_path_factory.mktemp("docs")
    env = {k: v for k, v in os.environ.items() if k != "SCGEARS_DOCS_INTERSPHINX"}
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    result = subprocess.run(
        [*command, "-d", str(out / "doctrees"), str(DOCS), str(out / "html")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
    )
    if result.returncode != 0:
        pytest.fail(f"sphinx -W failed (exit {result.returncode}):\n{result.stderr[-6000:]}")
    return out / "html"


@needs_sphinx
@pytest.mark.slow
def test_docs_build_without_warnings_and_have_every_page(built_docs):
    for page in (
        "index",
        "getting_started",
        "model",
        "metrics",
        "checks",
        "cells",
        "benchmarks",
        "tutorials",
        "api",
        "contributing",
        "changelog",
    ):
        assert (built_docs / f"{page}.html").is_file(), page


@needs_sphinx
@pytest.mark.slow
def test_api_reference_documents_every_public_name(built_docs):
    import scgears.model

    missing = []
    for module in (sg.pp, sg.tl, sg.pl, sg.datasets, scgears.model):
        for name in module.__all__:
            qualified = f"{module.__name__}.{name}"
            page = built_docs / "generated" / f"{qualified}.html"
            if not page.is_file() and f'id="{qualified}"' not in (
                built_docs / "api.html"
            ).read_text(encoding="utf-8"):
                missing.append(qualified)
    assert not missing, f"public names without an API entry in docs/api.md: {missing}"

    gears = (built_docs / "generated" / "scgears.model.GEARS.html").read_text(encoding="utf-8")
    for method in ("setup_anndata", "train", "predict", "save", "load"):
        assert f'id="scgears.model.GEARS.{method}"' in gears, method


@needs_sphinx
@pytest.mark.slow
def test_docs_render_the_notebooks_present(built_docs):
    tutorials = (built_docs / "tutorials.html").read_text(encoding="utf-8")
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for notebook in notebooks:
        assert (built_docs / "notebooks" / f"{notebook.stem}.html").is_file(), notebook.name
        assert f'href="notebooks/{notebook.stem}.html"' in tutorials, notebook.name
    if not notebooks:
        assert "No tutorial notebook" in tutorials


@needs_sphinx
def test_tutorials_listing_follows_the_files(tmp_path):
    conf = _load_conf()
    assert "No tutorial notebook" in conf.tutorials_listing(tmp_path / "absent")
    for name in ("02_norman2019.ipynb", "01_quickstart.ipynb", "README.md"):
        (tmp_path / name).write_text("{}")
    listing = conf.tutorials_listing(tmp_path)
    assert listing.startswith("```{toctree}")
    assert listing.index("notebooks/01_quickstart") < listing.index("notebooks/02_norman2019")
    assert "README" not in listing


@needs_sphinx
def test_intersphinx_is_off_unless_asked(monkeypatch):
    monkeypatch.delenv("SCGEARS_DOCS_INTERSPHINX", raising=False)
    assert "sphinx.ext.intersphinx" not in _load_conf().extensions
    monkeypatch.setenv("SCGEARS_DOCS_INTERSPHINX", "1")
    assert "sphinx.ext.intersphinx" in _load_conf().extensions
