"""cxr14: the library behind the ChestX-ray14 Snakemake pipeline.

The Snakemake rules in ``workflow/`` are thin wrappers; every stage's logic lives here so that it
can be imported, unit-tested and reused outside the workflow.
"""

from cxr14.labels import LABELS, NO_FINDING

__all__ = ["LABELS", "NO_FINDING", "DataError", "__version__"]
__version__ = "0.1.0"

from cxr14.errors import DataError  # noqa: E402
