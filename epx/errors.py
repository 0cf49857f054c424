"""The project's exception types, so callers (CLI, Hydra task) can print them cleanly.

- ``InputError``: bad user input — a missing/corrupt file, an unknown cell/mark,
  inconsistent naming. Every message names the offending file or value and says how to fix
  it; the CLI prints it as one line and exits 2.
- ``StorageError(InputError)``: a write failed for lack of room (no space left, file too
  large for the file system or ``ulimit -f``, disk quota). The message names the file that
  could not be written and the fix (free space, or move ``paths.cache_dir`` /
  ``hydra.sweep.dir`` to a disk with room); the previous version of the file is untouched
  (``epx.io.atomic``).
- ``NonFiniteLossError``: training diverged (the loss became NaN or inf). Not an input error:
  the data may be fine and the optimisation is not. The message gives the global step,
  epoch and loss value and the fixes (``epx.train.module``).
"""


class InputError(ValueError):
    """Bad user input: a missing/corrupt file, an unknown cell/mark, inconsistent naming."""


class StorageError(InputError):
    """A write failed because the disk (or quota, or file-size limit) has no room."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf; the job stops instead of reporting NaN metrics."""
