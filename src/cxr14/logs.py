"""Logging for workflow scripts: everything a job prints goes to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Iterator


@contextlib.contextmanager
def log_to(path: str) -> Iterator[None]:
    """Send stdout, stderr and ``logging`` to ``path`` for the duration of the block.

    An exception is written to the log with its traceback, and its one-line message is also
    printed to the job's original stderr, so the reason shows in Snakemake's own output.
    """
    real_stderr = sys.stderr
    with open(path, "w", buffering=1) as f:
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                yield
        except BaseException as exc:
            traceback.print_exc(file=f)
            print(f"Error: {type(exc).__name__}: {exc}\n(full log: {path})", file=real_stderr)
            raise
        finally:
            root.removeHandler(handler)
