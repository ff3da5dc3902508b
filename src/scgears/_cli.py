"""The ``scgears`` command line: ``scgears demo --out DIR`` runs the whole package offline.

Logging is configured here, for the command only: the library itself only logs to
``logging.getLogger("scgears...")`` and never installs a handler.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pandas as pd

#: Format of the progress lines written to stderr.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Third-party warnings that say nothing to a demo user (regular expressions).
_IGNORED_WARNINGS = (
    r"Your `IterableDataset` has `__len__` defined",  # one loader process: nothing to fix
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning vs torch versions
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``scgears`` (a sub-command per job)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="scgears",
        description="GEARS perturbation-response prediction for the scverse.",
    )
    parser.add_argument("--version", action="version", version=f"scgears {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser(
        "demo",
        help="simulate a screen, train GEARS, evaluate it beside baselines, map interactions",
        description=(
            "Run scgears end to end on a simulated CRISPR screen with planted genetic "
            "interactions, offline: preprocessing, GEARS training, prediction of held-out "
            "conditions beside the control, mean, additive and linear baselines, and a predicted "
            "genetic-interaction map. Writes profiles (.h5ad), tables (.csv) and figures (.png) "
            "to --out and prints a summary. About a minute on a laptop CPU."
        ),
    )
    demo.add_argument("--out", required=True, metavar="DIR", help="folder for the results")
    demo.add_argument(
        "--seed", type=int, default=0, help="seed of the screen, split and training (default 0)"
    )
    demo.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="training epochs (default 10; 2 with --small)",
    )
    demo.add_argument(
        "--small",
        action="store_true",
        help="a much smaller screen and 2 epochs: seconds instead of minutes (for tests)",
    )
    demo.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty DIR, replacing the demo's files there",
    )
    demo.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help="CPU threads for torch (default: torch's own choice)",
    )
    demo.add_argument(
        "--quiet", action="store_true", help="no progress bars or log lines, only the summary"
    )
    demo.set_defaults(command_parser=demo)  # errors show the sub-command's usage
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``scgears`` command line; returns the exit status.

    Parameters
    ----------
    argv
        Arguments without the program name (default: ``sys.argv[1:]``).

    Examples
    --------
    >>> from scgears._cli import main
    >>> main(["demo", "--out", "demo_out", "--small"])  # doctest: +SKIP
    0
    """
    # OpenMP threads that busy-wait between torch operations make training several times slower
    # on a CPU shared with other processes (measured: 10x on 2 busy cores); sleeping costs nothing
    # on an idle one. It only takes effect before torch loads its OpenMP runtime.
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args.command_parser, args)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse catches it
    return 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _demo(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window; must precede any pyplot import

    from ._demo import _check_out, _run_demo

    try:
        _check_out(args.out, args.overwrite)
    except OSError as error:  # a file in the way, no permission, not empty: the message says
        parser.error(str(error))
    start = time.perf_counter()
    from . import model  # noqa: F401  # imports Lightning, which sets its loggers' levels

    with _logging(quiet=args.quiet), _torch_threads(args.threads), warnings.catch_warnings():
        for message in _IGNORED_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        result = _run_demo(
            args.out,
            seed=args.seed,
            max_epochs=args.epochs,
            small=args.small,
            overwrite=True,  # checked above
            progress_bar=not args.quiet,
        )
    print(format_summary(result.summary, result.gi_recovery))
    print(format_timings(result.timings, time.perf_counter() - start))
    print(f"\nResults in {args.out}: " + ", ".join(sorted(p.name for p in result.files.values())))
    return 0


@contextmanager
def _torch_threads(n_threads: int | None) -> Iterator[None]:
    """Use ``n_threads`` CPU threads in torch for the command, then restore the previous number."""
    import torch

    previous = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _logging:
    """Log scgears' steps to stderr for the duration of the command, then restore everything."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.handler = logging.StreamHandler(sys.stderr)
        self.handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%H:%M:%S"))
        self.loggers = {
            "scgears": logging.WARNING if quiet else logging.INFO,
            # Lightning's banner lines (GPU available, tips) add nothing to the demo
            "lightning.pytorch": logging.WARNING,
        }
        self.saved: dict[str, int] = {}

    def __enter__(self):
        for name, level in self.loggers.items():
            self.saved[name] = logging.getLogger(name).level
            logging.getLogger(name).setLevel(level)
        logging.getLogger("scgears").addHandler(self.handler)
        return self

    def __exit__(self, *exc):
        logging.getLogger("scgears").removeHandler(self.handler)
        for name, level in self.saved.items():
            logging.getLogger(name).setLevel(level)
        return False


def format_summary(summary: pd.DataFrame, recovery: pd.DataFrame) -> str:
    """The printed summary: metric tables (method x subgroup) and the GI recovery table."""
    counts = summary.pivot(index="method", columns="subgroup", values="n_conditions")
    methods = list(dict.fromkeys(summary["method"]))
    subgroups = list(dict.fromkeys(summary["subgroup"]))
    counts = counts.loc[methods, subgroups]
    # a method scored on fewer conditions (additive) has an "all" over other conditions
    partial = counts["all"] < counts["all"].max() if "all" in counts else None
    lines = ["", "Held-out (test) conditions: mean per split subgroup"]
    header = "conditions: " + ", ".join(
        f"{s} {int(counts[s].max())}" for s in subgroups if s != "all"
    )
    lines.append(header)
    for metric, note in (("mse_de", "lower is better"), ("pearson_delta", "higher is better")):
        table = summary.pivot(index="method", columns="subgroup", values=metric)
        table = table.loc[methods, subgroups]
        if partial is not None:
            table.loc[partial, "all"] = float("nan")
        table = table.rename_axis(index=None, columns=metric)
        lines += ["", f"{metric}: {note}", table.to_string(float_format="{:.3f}".format)]
    if partial is not None and partial.any():
        scored = [
            f"{m}: "
            + ", ".join(
                f"{s} {int(counts.loc[m, s])}"
                for s in subgroups
                if s != "all" and counts.loc[m, s] == counts.loc[m, s]  # not NaN
            )
            for m in counts.index[partial]
        ]
        lines.append(
            "Scored on fewer conditions (singles not trained), 'all' left out: "
            + "; ".join(scored)
            + "."
        )
    lines += [
        "",
        "Planted genetic interactions ranked first by their score (top n = planted)",
        recovery.to_string(index=False, float_format="{:.1f}".format),
    ]
    return "\n".join(lines).replace("NaN", "  -")


def format_timings(timings: dict[str, float], total: float) -> str:
    """Seconds per step and in all."""
    width = max(len(step) for step in [*timings, "total (with imports)"])
    lines = ["", "Time per step (s)"]
    lines += [f"  {step:<{width}}  {seconds:6.1f}" for step, seconds in timings.items()]
    lines.append(f"  {'total (with imports)':<{width}}  {total:6.1f}")
    return "\n".join(lines)
