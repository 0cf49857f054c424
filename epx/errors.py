"""The one exception type for bad input, so callers (CLI, Hydra task) can print it cleanly.

Every message names the offending file or value and says how to fix it.
"""


class InputError(ValueError):
    """Bad user input: a missing/corrupt file, an unknown cell/mark, inconsistent naming."""
