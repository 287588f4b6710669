"""A check compiled code can make that Numba has no syntax for: does an array have the
dtype the op table says?  ``dtype_is(a, np.float64(0))`` is a constant decided while
Numba types the kernel (``a.dtype == np.float64`` does not type), so the check costs
nothing at run time.  Generated modules import it only when they call a custom op's
Numba implementation, whose result the op's dtype rule must describe."""

from __future__ import annotations

import numpy as np
from numba.extending import overload


def dtype_is(a, like):
    """Whether array `a` has the dtype of the scalar `like` (plain Python version)."""
    return np.asarray(a).dtype == np.asarray(like).dtype


@overload(dtype_is)
def _dtype_is(a, like):
    same = getattr(a, "dtype", a) == like

    def impl(a, like):
        return same
    return impl


__all__ = ["dtype_is"]
