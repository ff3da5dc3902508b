"""Sphinx configuration of the scgears documentation.

Build offline, warnings as errors, from the repository root::

    python -m sphinx -W -b html docs docs/_build

Nothing here executes a notebook or fetches anything: the tutorials in ``notebooks/`` (copied to
``docs/notebooks`` by this file) are rendered with their stored outputs. Links to other
projects' documentation (intersphinx) need the network, so they are on only when the environment
variable ``SCGEARS_DOCS_INTERSPHINX=1`` is set.
"""

from __future__ import annotations

import os
import shutil
import warnings
from datetime import date
from pathlib import Path

import scgears

# sphinx-autodoc-typehints still calls an API that Sphinx 10 removes; the notice is not ours to fix
warnings.filterwarnings("ignore", message=".*set_application.*", category=DeprecationWarning)

HERE = Path(__file__).resolve().parent
#: The tutorials live in the repository's ``notebooks/``; each build copies them to
#: ``docs/notebooks`` (ignored by git) so that Sphinx finds them inside its source folder and links
#: between notebooks resolve (not with a symbolic link: MyST resolves links from the real location).
NOTEBOOKS_SOURCE = HERE.parent / "notebooks"
NOTEBOOKS = HERE / "notebooks"
#: What is copied: the notebooks and the images they may show; not data or models they wrote.
_TUTORIAL_FILES = (".ipynb", ".png", ".jpg", ".jpeg", ".gif", ".svg")

# -- Project ---------------------------------------------------------------------------------------

project = "scgears"
author = "scgears developers"
copyright = f"{date.today().year}, {author}"
version = scgears.__version__
release = version

# -- General ---------------------------------------------------------------------------------------

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_autodoc_typehints",
]
if os.environ.get("SCGEARS_DOCS_INTERSPHINX") == "1":
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable/", None),
        "scipy": ("https://docs.scipy.org/doc/scipy/", None),
        "pandas": ("https://pandas.pydata.org/docs/", None),
        "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
        "mudata": ("https://mudata.readthedocs.io/en/latest/", None),
        "scanpy": ("https://scanpy.readthedocs.io/en/stable/", None),
        "scvi": ("https://docs.scvi-tools.org/en/stable/", None),
        "matplotlib": ("https://matplotlib.org/stable/", None),
        "torch": ("https://pytorch.org/docs/stable/", None),
    }

templates_path = ["_templates"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"
exclude_patterns = [
    "_build",
    # myst-nb writes the notebooks it renders beside the build folder; not pages of their own
    "jupyter_execute",
    "**.ipynb_checkpoints",
    "Thumbs.db",
    ".DS_Store",
    "notebooks/*/**",  # only the top-level notebooks are pages
]

# -- MyST and notebooks ----------------------------------------------------------------------------

myst_enable_extensions = ["colon_fence", "dollarmath", "amsmath", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # render the outputs stored in the notebooks; never run them here
nb_merge_streams = True
# Tutorials are written by hand in Jupyter: their heading levels and widget outputs (progress bars)
# are not errors of the documentation.
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]

# -- API reference ---------------------------------------------------------------------------------

autosummary_generate = True
autosummary_imported_members = True
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
typehints_use_signature = False
typehints_use_signature_return = False
typehints_document_rtype = True
always_document_param_types = False
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = True
napoleon_use_param = True

# -- HTML ------------------------------------------------------------------------------------------

html_theme = "sphinx_book_theme"
html_title = "scgears"
html_theme_options = {"show_toc_level": 2}


# -- Tutorials: copy and list whatever notebooks exist ---------------------------------------------


def copy_notebooks(source: Path = NOTEBOOKS_SOURCE, target: Path = NOTEBOOKS) -> None:
    """Replace ``target`` by a copy of the notebooks (and images) in ``source``, times kept."""
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    if not source.is_dir():
        return

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {
            name
            for name in names
            if name == ".ipynb_checkpoints"
            or (not (Path(folder) / name).is_dir() and not name.lower().endswith(_TUTORIAL_FILES))
        }

    shutil.copytree(source, target, ignore=ignore)


TUTORIALS_MARKER = "<!-- the tutorial notebooks are listed here by docs/conf.py -->"


def tutorials_listing(folder: Path = NOTEBOOKS) -> str:
    """A toctree of the notebooks in ``folder``, in file-name order (01_..., 02_...).

    The build must pass whether or not the notebooks exist yet (``notebooks/`` is written apart
    from the documentation, and a toctree entry or glob that matches nothing is a warning), so the
    list is made from the files present when the docs are built.
    """
    notebooks = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
    if not notebooks:
        return "No tutorial notebook is in `notebooks/` yet.\n"
    entries = "\n".join(f"notebooks/{path.stem}" for path in notebooks)
    return f"```{{toctree}}\n:maxdepth: 1\n\n{entries}\n```\n"


def _list_tutorials(app, docname: str, source: list[str]) -> None:
    if docname == "tutorials" and TUTORIALS_MARKER in source[0]:
        source[0] = source[0].replace(TUTORIALS_MARKER, tutorials_listing())


def setup(app) -> None:
    """Copy the notebooks before Sphinx looks for sources, and list them on the tutorials page."""
    copy_notebooks()
    app.connect("source-read", _list_tutorials)
