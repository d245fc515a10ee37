"""The project's error types.

Every problem a user can cause (bad data, bad config, bad checkpoint) raises a subclass of
:class:`CoopmapError`; the CLI prints its message as one line and exits with status 2 (``--debug`` shows the
traceback). Anything else reaching the CLI is a bug in coopmap.
"""

from __future__ import annotations

import os


class CoopmapError(Exception):
    """Base class of the errors coopmap reports to users as one clear line."""


class DataError(CoopmapError, ValueError):
    """A file of the dataset (or a file we wrote) is missing, malformed or inconsistent.

    Args:
        path: the offending file or folder.
        reason: what is wrong, in words a user can act on.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ConfigError(CoopmapError, ValueError):
    """A configuration key or value is wrong (misspelt override, missing teacher, bad type)."""


class CheckpointError(CoopmapError, ValueError):
    """A checkpoint or teacher cache is unreadable, unsafe, or from another model/config."""


class ShapeError(CoopmapError, ValueError):
    """A tensor or array has the wrong shape at a public entry point."""


class InvalidValueError(CoopmapError, ValueError):
    """A value at a public entry point is outside its domain: NaN / inf, or a singular camera matrix."""


def check_shape(name: str, x, expected: tuple[int | None | str, ...]) -> None:
    """Raise :class:`ShapeError` unless ``x.shape`` matches ``expected``.

    ``expected`` lists one entry per trailing dimension: an int must match exactly, ``None`` matches anything;
    a leading ``"*"`` allows any number of leading (batch) dimensions.

    >>> import numpy as np
    >>> check_shape("pts", np.zeros((2, 5, 3)), ("*", 3))
    """
    shape = tuple(x.shape)
    dims = list(expected)
    leading = bool(dims) and dims[0] == "*"
    if leading:
        dims = dims[1:]
    ok = len(shape) >= len(dims) if leading else len(shape) == len(dims)
    if ok:
        tail = shape[len(shape) - len(dims):] if dims else ()
        ok = all(d is None or d == s for d, s in zip(dims, tail))
    if not ok:
        want = ", ".join("..." if d == "*" else ("?" if d is None else str(d)) for d in expected)
        raise ShapeError(f"{name}: expected shape ({want}), got {shape}")


def check_finite(name: str, x) -> None:
    """Raise :class:`InvalidValueError` unless every value of ``x`` (numpy array or torch tensor) is finite.

    >>> import numpy as np
    >>> check_finite("pose", np.zeros(6))
    """
    import numpy as np

    if hasattr(x, "isfinite"):  # torch
        ok = bool(x.isfinite().all())
    else:
        arr = np.asarray(x)
        ok = arr.dtype.kind not in "fc" or bool(np.isfinite(arr).all())
    if not ok:
        raise InvalidValueError(f"{name}: expected finite values, got NaN or inf")
