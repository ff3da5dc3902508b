"""Wall time and peak resident memory of a block of code, for the benchmark scripts."""

from __future__ import annotations

import resource
import threading
import time
from dataclasses import dataclass, field

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is optional
    psutil = None


@dataclass
class Measurement:
    """What :class:`measure` recorded: seconds, and peak RSS in MB (of this process)."""

    seconds: float = 0.0
    peak_mb: float = 0.0
    start_mb: float = 0.0
    samples: list[float] = field(default_factory=list)


def _rss_mb() -> float:
    if psutil is not None:
        return psutil.Process().memory_info().rss / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class measure:
    """Time a block and sample its resident memory every ``interval`` seconds.

    Without psutil the peak is the process-wide peak so far (``ru_maxrss``).

    Examples
    --------
    >>> with measure() as m:
    ...     x = [0] * 1_000_000
    >>> m.seconds >= 0 and m.peak_mb > 0
    True
    """

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.result = Measurement()
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.result.peak_mb = max(self.result.peak_mb, _rss_mb())
            self._stop.wait(self.interval)

    def __enter__(self) -> Measurement:
        self.result.start_mb = _rss_mb()
        self.result.peak_mb = self.result.start_mb
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._start = time.perf_counter()
        return self.result

    def __exit__(self, *exc) -> None:
        self.result.seconds = time.perf_counter() - self._start
        self._stop.set()
        self._thread.join()
        self.result.peak_mb = max(self.result.peak_mb, _rss_mb())
