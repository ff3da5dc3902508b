"""CPU threads for training: as fast from Python as from the command line on a shared CPU.

Idle OpenMP threads of torch busy-wait ("spin") by default between operations. On a CPU that other
processes also use, the spinning threads take the cores from the threads doing the work, and
training becomes several times slower (measured: 7-14x on 2 busy cores). ``OMP_WAIT_POLICY=PASSIVE``
makes them sleep instead, but OpenMP reads it only once, when torch loads its runtime.

So scgears does two things:

* ``import scgears`` sets ``OMP_WAIT_POLICY=PASSIVE`` when torch is not imported yet and the
  variable is not set (:func:`set_wait_policy`): a script or notebook that imports scgears before
  torch, scvi-tools or Lightning is as fast as ``scgears demo``;
* when torch was loaded first with spinning threads, training uses only as many threads as the CPU
  has idle cores (:func:`training_threads`, one thread on a busy machine: with a single thread
  nothing spins), and says so once with a warning. Set the variable yourself, before any import,
  to keep full control: ``OMP_WAIT_POLICY=PASSIVE`` (or ``ACTIVE``) is always respected.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

#: The OpenMP variable that decides whether idle threads spin or sleep.
WAIT_POLICY_ENV = "OMP_WAIT_POLICY"

#: Whether torch's OpenMP threads sleep when idle; decided by :func:`set_wait_policy`.
_passive: bool | None = None
_warned = False


def set_wait_policy() -> bool:
    """Make torch's idle OpenMP threads sleep, if torch has not loaded OpenMP yet.

    Called once by ``import scgears``. Sets ``OMP_WAIT_POLICY=PASSIVE`` unless the variable is
    already set (a user's choice is kept) or torch is already imported (then it is too late).

    Returns
    -------
    Whether torch's idle threads sleep (the policy in force is ``PASSIVE``).

    Examples
    --------
    >>> from scgears._threads import set_wait_policy
    >>> set_wait_policy()  # doctest: +SKIP
    True
    """
    global _passive
    if "torch" not in sys.modules:
        os.environ.setdefault(WAIT_POLICY_ENV, "PASSIVE")
    if _passive is None:
        # the policy torch loaded (or will load) with: the variable as it is now
        _passive = os.environ.get(WAIT_POLICY_ENV, "").strip().upper() == "PASSIVE"
    return _passive


def threads_may_spin() -> bool:
    """Whether torch's idle OpenMP threads busy-wait: torch was loaded without ``PASSIVE``."""
    passive = set_wait_policy() if _passive is None else _passive
    # ACTIVE set by hand is a deliberate choice (e.g. a dedicated machine): respected
    return not passive and os.environ.get(WAIT_POLICY_ENV, "").strip().upper() != "ACTIVE"


def idle_cores() -> int:
    """Cores not used by other processes, from the 1-minute load average (at least 1)."""
    n_cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - Windows has no load average
        return n_cores
    return max(1, n_cores - math.ceil(load - 0.5))


@contextmanager
def training_threads() -> Iterator[int]:
    """Use no more torch threads than idle cores while torch's threads spin, then restore.

    Nothing changes when idle threads sleep (``import scgears`` came before torch, or
    ``OMP_WAIT_POLICY`` is set), or when the CPU has enough idle cores for every thread.
    Otherwise training runs with one thread per idle core, and a warning (once per process) says
    how to get the full thread count back.

    Yields
    ------
    The number of torch threads used.

    Examples
    --------
    >>> from scgears._threads import training_threads
    >>> with training_threads() as n_threads:  # doctest: +SKIP
    ...     model.train(max_epochs=2)
    """
    import torch

    previous = torch.get_num_threads()
    n_threads = previous
    if previous > 1 and threads_may_spin():
        n_threads = min(previous, idle_cores())
    if n_threads == previous:
        yield previous
        return
    _warn_once(previous, n_threads)
    torch.set_num_threads(n_threads)
    try:
        yield n_threads
    finally:
        torch.set_num_threads(previous)


def _warn_once(previous: int, n_threads: int) -> None:
    global _warned
    message = (
        f"torch was imported before scgears without {WAIT_POLICY_ENV}=PASSIVE: its idle threads "
        "busy-wait, which slows training several times on a busy CPU. Training uses "
        f"{n_threads} of {previous} threads (the idle cores). For all threads, import scgears "
        f"before torch/scvi-tools, or set {WAIT_POLICY_ENV}=PASSIVE before starting Python "
        f"(or {WAIT_POLICY_ENV}=ACTIVE to keep spinning threads and silence this)."
    )
    if _warned:
        logger.info(message)
        return
    _warned = True
    warnings.warn(message, UserWarning, stacklevel=4)
