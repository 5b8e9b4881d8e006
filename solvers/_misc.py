"""Helpers every module of `solvers` uses: argument checks.

One copy each, here, as `equinox/_misc.py` holds equinox's. Errors follow the
project's convention: a `ValueError` whose message names the caller and the
argument, and ends with what was given.
"""

import numpy as np


def check_count(value, message: str, *, minimum: int) -> int:
    """An integer argument >= `minimum` (Python or NumPy integer, not bool); `ValueError` otherwise.

    The error reads `"{message}, got {value!r}."`, `value` as given.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{message}, got {value!r}.")
    return int(value)
