"""Parsing the whitespace-separated numbers of an ascii ``.pcd`` body.

Two paths, one result:

- **fast**: pandas' C CSV tokenizer and float converter (correctly rounded: pandas' default converter since 1.3),
  reading rows of a known width separated by single spaces (how Open3D and PCL write them): 3-5x faster than
  Open3D's own reader and ``numpy.loadtxt`` (``benchmarks/bench_reader.py``).
  pandas is lenient (a long row can be cut, a short one is NaN-filled, a leading space shifts a row), so its
  answer is taken only when the body has exactly ``rows x (ncols - 1)`` spaces and the result no NaN (which also
  catches pandas' ``NA``/``null`` spellings): then every row held exactly ``ncols`` numbers.
- **strict**: everything else (other whitespace, ``nan`` tokens, a short last row, a bad token) is parsed token
  by token with Python's float parser, which accepts every spelling ``float()`` accepts and names the first token
  that is not a number.
"""

from __future__ import annotations

import csv
import io
import warnings

import numpy as np

__all__ = ["parse_floats"]


def _strict(body: bytes) -> np.ndarray:
    """Python's float parser, token by token: accepts nan/inf and names the first bad token."""
    tokens = body.split()
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        for i, tok in enumerate(tokens):
            try:
                float(tok)
            except ValueError:
                raise ValueError(f"value {i} is not a number: {tok[:40].decode('ascii', 'replace')!r}") from None
        raise


def _fast_table(body: bytes, ncols: int) -> np.ndarray | None:
    """(rows, ncols) float64 through pandas, or None unless every line held exactly ``ncols`` numbers.

    pandas with ``sep=" "`` splits a line at every space (so an extra space makes an empty field) and NaN-fills
    missing and empty fields; with ``index_col=False`` a long line is an error or cut with a warning. Accepted
    lines therefore have at least ``ncols - 1`` spaces each; the total space count then pins every one to
    exactly ``ncols - 1``, i.e. ``ncols`` non-empty fields.
    """
    import pandas as pd  # here, not at module import: ~0.2 s that binary-pcd users and other commands never pay

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.ParserWarning)  # a cut line: caught by the space count
            table = pd.read_csv(io.BytesIO(body), sep=" ", header=None, names=list(range(ncols)), index_col=False,
                                dtype=np.float64, engine="c", quoting=csv.QUOTE_NONE, skip_blank_lines=True)
    except (ValueError, OverflowError, UnicodeDecodeError):  # pandas' ParserError/EmptyDataError are ValueErrors
        return None
    values = table.to_numpy(dtype=np.float64)
    spaces = np.count_nonzero(np.frombuffer(body, dtype=np.uint8) == 32)
    if values.shape[1] != ncols or spaces != values.shape[0] * (ncols - 1) or np.isnan(values).any():
        return None
    return values


def parse_floats(body: bytes, columns: tuple[int, tuple[int, ...]] | None = None) -> np.ndarray:
    """Parse whitespace-separated decimal numbers.

    Args:
        body: ASCII bytes, e.g. the data section of an ascii ``.pcd``.
        columns: optional ``(ncols, keep)``: the values form rows of ``ncols`` and only the columns ``keep`` are
            wanted; the result is then (rows, len(keep)) flattened in row order. Ignored (every value is
            returned) when the value count is not a multiple of ``ncols``.
    Returns:
        (N,) float64 values in file order.
    Raises:
        ValueError: a token is not a number (the message names it).
    """
    if columns is not None and 0 < len(columns[1]) <= columns[0] and body and not body.isspace():  # no copy
        fast = _fast_table(body, columns[0])
        if fast is not None:
            return fast[:, list(columns[1])].ravel()
    return _select(_strict(body), columns)


def _select(values: np.ndarray, columns) -> np.ndarray:
    if columns is None or values.size % columns[0] or len(columns[1]) >= columns[0]:
        return values
    return values.reshape(-1, columns[0])[:, list(columns[1])].ravel()
