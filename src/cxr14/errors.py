"""Exceptions raised for bad input data (as opposed to programming errors)."""


class DataError(ValueError):
    """Input data is malformed. The message names the file, row or key at fault."""
