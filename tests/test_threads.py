"""Thread settings (issue 11, item 6): training from Python as fast as from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scgears import _threads

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _python(code: str, **env) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    clean["PYTHONPATH"] = SRC + os.pathsep + clean.get("PYTHONPATH", "")
    clean.update(env)
    out = subprocess.run(
        [sys.executable, "-c", code], env=clean, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_import_scgears_makes_idle_threads_sleep_unless_torch_came_first():
    code = (
        "import os, sys; {first}import scgears; from scgears._threads import threads_may_spin; "
        "print(os.environ.get('OMP_WAIT_POLICY'), threads_may_spin(), 'torch' in sys.modules)"
    )
    assert _python(code.format(first="")) == "PASSIVE False False"
    # too late once torch has loaded OpenMP: training then limits the threads instead
    assert _python(code.format(first="import torch; ")) == "None True True"
    # a user's own choice is kept, and ACTIVE is respected as deliberate
    assert _python(code.format(first=""), OMP_WAIT_POLICY="ACTIVE") == "ACTIVE False False"


def test_idle_cores_follow_the_load(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert _threads.idle_cores() == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 0.0, 0.0))
    assert _threads.idle_cores() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert _threads.idle_cores() == 1


def test_training_threads_limit_spinning_threads_on_a_busy_cpu(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(_threads, "_passive", False)
    monkeypatch.setattr(_threads, "_warned", False)
    monkeypatch.setattr(_threads, "idle_cores", lambda: 1)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        inside = []
        with pytest.warns(UserWarning, match=r"imported before scgears.*1 of 2 threads"):
            inside.append(_enter(_threads.training_threads(), torch))
        assert inside == [(1, 1)]
        assert torch.get_num_threads() == 2  # restored
        # idle threads that sleep do no harm: nothing changes
        monkeypatch.setattr(_threads, "_passive", True)
        with _threads.training_threads() as n_threads:
            assert n_threads == 2
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def _enter(context, torch) -> tuple[int, int]:
    """The threads a context yields and the threads torch uses inside it."""
    with context as n_threads:
        return n_threads, torch.get_num_threads()
