"""Logging for workflow scripts: everything a job prints goes to its Snakemake log file, and
a few progress lines (one per epoch, one per evaluation) also to the console."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator

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


def _console_handler(stream) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.addFilter(lambda record: getattr(record, "console", False))
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


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
        console = _console_handler(real_stderr)
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
