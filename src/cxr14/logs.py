"""Logging for workflow scripts: everything a job prints goes to its Snakemake log file, and
a few lines also to the console (one per epoch, one per evaluation, and progress in long loops
at most every ``CXR14_PROGRESS_SECONDS``, 20 s by default), each naming its job."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path

# Pass as `extra=CONSOLE` to show a log record on the console as well as in the job's log.
CONSOLE = {"console": True}


def limit_threads() -> int | None:
    """Hold torch to the job's threads: Snakemake sets OMP_NUM_THREADS (and the BLAS
    variables) to the threads a rule declares; torch's inter-op pool would not follow it."""
    threads = os.environ.get("OMP_NUM_THREADS")
    if not threads or "torch" not in sys.modules:
        return None
    import torch

    torch.set_num_threads(int(threads))
    with contextlib.suppress(RuntimeError):  # settable once, before any parallel work
        torch.set_num_interop_threads(int(threads))
    return int(threads)


def job_label(log_path: str | os.PathLike) -> str:
    """The job a log file belongs to, from its path under logs/: ``logs/train_model/vgg_like/
    holdout/seed0.log`` -> ``train_model vgg_like/holdout/seed0``."""
    parts = Path(log_path).with_suffix("").parts
    if "logs" not in parts:
        return parts[-1]
    rule, *rest = parts[len(parts) - parts[::-1].index("logs") :]
    return f"{rule} {'/'.join(rest)}".strip()


def _console_handler(stream, label: str) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.addFilter(lambda record: getattr(record, "console", False))
    # Jobs running side by side share the console: each line says whose it is.
    handler.setFormatter(logging.Formatter(f"[{label}] %(message)s"))
    return handler


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def console_progress(items: Iterable, total: int, what: str, show: bool = True) -> Iterator:
    """``items``, with a console line '<what>: done/total (p%), about T left' at most every
    ``CXR14_PROGRESS_SECONDS`` seconds (20 by default; none for a loop done sooner, none
    when not ``show``), so that a long loop never leaves the console silent."""
    every = float(os.environ.get("CXR14_PROGRESS_SECONDS", 20))
    start = last = time.monotonic()
    log = logging.getLogger(__name__)
    for done, item in enumerate(items, 1):
        yield item
        now = time.monotonic()
        if show and now - last >= every and done < total:
            left = _duration((total - done) * (now - start) / done)
            pct = 100 * done // total
            log.info("%s: %d/%d (%d%%), about %s left", what, done, total, pct, left, extra=CONSOLE)
            last = now


@contextlib.contextmanager
def log_to(path: str) -> Iterator[None]:
    """Send stdout, stderr and ``logging`` to ``path`` for the duration of the block.

    Records logged with ``extra=CONSOLE`` also go to the job's original stderr (Snakemake's
    console). An exception is written to the log with its traceback, and its one-line message
    is also printed to that stderr, so the reason shows in Snakemake's own output.
    """
    real_stderr = sys.stderr
    with open(path, "w", buffering=1) as f:
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        console = _console_handler(real_stderr, job_label(path))
        root = logging.getLogger()
        root.addHandler(handler)
        root.addHandler(console)
        root.setLevel(logging.INFO)
        threads = limit_threads()
        if threads:
            logging.getLogger(__name__).info("CPU threads: %d", threads)
        try:
            with contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                yield
        except BaseException as exc:
            traceback.print_exc(file=f)
            print(f"Error: {type(exc).__name__}: {exc}\n(full log: {path})", file=real_stderr)
            raise
        finally:
            root.removeHandler(handler)
            root.removeHandler(console)
