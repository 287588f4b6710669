"""Atomic file writes: the one way graphc writes cache entries, data files and
checkpoints, so a reader (or a crash) never sees half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path, write):
    """Call ``write(f)`` on a temporary binary file in `path`'s directory, flush it to
    disk, then rename it over `path`.  On any failure the temporary file is removed and
    `path` keeps its previous content.  The file gets the permissions of any file the
    user creates (0o666 less the umask), not mkstemp's private 0o600."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask():
    """The process's umask (reading it means setting it: restore at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
