"""Re-execute the tutorial notebooks in place so the docs render fresh outputs.

Usage (from the repository root; notebook 2 reads the real Norman subset when
``SCGEARS_TUTORIAL_NORMAN`` points to it, otherwise it downloads Norman 2019)::

    SCGEARS_TUTORIAL_NORMAN=../shared/data/perturbseq/perturbench_devel_norman19_mcfaline23.h5ad \
        python scripts/execute_notebooks.py notebooks/*.ipynb
"""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

for name in sys.argv[1:]:
    path = Path(name)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=1200,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    nbformat.write(notebook, path)
    print(f"{path.name}: {time.perf_counter() - start:.1f} s", flush=True)
