"""cxr14: the library behind the ChestX-ray14 Snakemake pipeline.

The Snakemake rules in ``workflow/`` are thin wrappers; every stage's logic lives here so that it
can be imported, unit-tested and reused outside the workflow.
"""

from cxr14.errors import DataError

__all__ = ["DataError", "__version__"]
__version__ = "0.1.0"
