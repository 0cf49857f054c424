"""The one figure writer: a matplotlib figure saved as PNG, atomically, and closed.

Contract: ``save_png(fig, path, *, dpi) -> Path``. The figure is rendered into memory first,
so a failing render writes nothing, then written through ``epx.io.atomic`` (a reader never
sees half a PNG; no room on the disk is one ``StorageError``). The figure is closed whatever
happens: a pyplot figure is released from pyplot (which would otherwise keep it, and its
memory, until the process ends); a plain ``Figure`` is held by nothing else.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from epx.io.atomic import atomic_write


def save_png(fig, path: str | os.PathLike, *, dpi: int) -> Path:
    try:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
        return atomic_write(path, lambda handle: handle.write(buffer.getvalue()), binary=True)
    finally:
        if fig.canvas.manager is not None:  # made by pyplot, which is then already imported
            import matplotlib.pyplot as plt

            plt.close(fig)
