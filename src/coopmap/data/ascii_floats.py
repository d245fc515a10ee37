"""Fast parsing of whitespace-separated decimal numbers (the body of an ascii ``.pcd``), in pure numpy.

``numpy.fromstring``/``loadtxt`` and Open3D parse one number at a time (~150-200 ns each). Here every step is a
whole-array numpy operation over the tokens:

1. token boundaries from the whitespace mask (one pass over the bytes);
2. the first 16 bytes of every token as two unaligned little-endian uint64 words (one gather each);
3. the dot and exponent columns from their byte positions (one search over the sorted token starts);
4. the digits of every token as one integer ``S = sum_c d_c 10^(15-c)`` (non-digit bytes count as 0), with the
   classic SWAR reduction: 8 digit bytes -> one integer in three multiply-shift-mask steps;
5. integer arithmetic on ``S`` separates the mantissa digits before/after the dot, the exponent digits and the
   bytes past the token end (which belong to the next token): all are decimal digit ranges of ``S``;
6. a per-token check (popcount of the non-digit bytes inside the token = sign + dot + 'e' + exponent sign, and at
   least one mantissa digit) sends anything malformed to the slow path, which names the bad token.

The value is then ``mantissa * 10^(exponent - k)`` in float64: exact integer mantissa and one correctly rounded
operation when |exponent - k| <= 22 (identical to Python's float()), within 2 ulp beyond. Tokens of 16 characters or more, ``nan``/``inf`` or any other character fall back to
``numpy.fromstring``, which is slower but accepts anything a float parser accepts.
"""

from __future__ import annotations

import numpy as np

__all__ = ["parse_floats"]

_ALLOWED = b"0123456789+-.eE \t\r\n\v\f"
_W = 16  # bytes per token window (two uint64 words)
_U = np.uint64
_POW10_I = 10 ** np.arange(0, _W + 1, dtype=np.int64)
_POW10_F = 10.0 ** np.arange(0, _W + 1)
_POW10_F22 = 10.0 ** np.arange(0, 23)
_POW10_ALL_OFFSET = 340
_POW10_ALL = np.array([float(f"1e{k}") for k in range(-_POW10_ALL_OFFSET, 309)])  # correctly rounded
_SWAR_MASKS = (_U(0x00FF00FF00FF00FF), _U(0x0000FFFF0000FFFF), _U(0x00000000FFFFFFFF))


def _swar8(words: np.ndarray) -> np.ndarray:
    """uint64 words of 8 digit bytes (0..9, first byte most significant) -> their 8-digit integer values."""
    x = (words * _U(10) + (words >> _U(8))) & _SWAR_MASKS[0]
    x = (x * _U(100) + (x >> _U(16))) & _SWAR_MASKS[1]
    return (x * _U(10000) + (x >> _U(32))) & _SWAR_MASKS[2]


def _first_column(positions: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Byte positions of a character (sorted) -> (N,) column of its first occurrence in each token, 16 if none."""
    out = np.full(starts.size, _W, dtype=np.int64)
    if positions.size:
        tok = np.searchsorted(starts, positions, side="right") - 1
        inside = (tok >= 0) & (positions < ends[np.maximum(tok, 0)])
        tok, pos = tok[inside], positions[inside]
        first = np.ones(tok.size, dtype=bool)
        first[1:] = tok[1:] != tok[:-1]
        out[tok[first]] = pos[first] - starts[tok[first]]
    return out


def _slow(tokens: list[bytes]) -> np.ndarray:
    """Python's float parser, token by token: accepts nan/inf and names the first bad token."""
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        for i, tok in enumerate(tokens):
            try:
                float(tok)
            except ValueError:
                raise ValueError(f"value {i} is not a number: {tok[:40].decode('ascii', 'replace')!r}") from None
        raise


def _byte_masks(lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) token lengths (1..15) -> two uint64 masks selecting the token's bytes in words 0 and 1."""
    ones = _U(0xFFFFFFFFFFFFFFFF)
    l0 = np.minimum(lens, 8).astype(np.uint64) * _U(8)
    l1 = np.clip(lens - 8, 0, 8).astype(np.uint64) * _U(8)
    m0 = np.where(l0 >= 64, ones, (_U(1) << np.minimum(l0, _U(63))) - _U(1))
    m1 = np.where(l1 >= 64, ones, (_U(1) << np.minimum(l1, _U(63))) - _U(1))
    return m0, m1


def parse_floats(body: bytes, columns: tuple[int, tuple[int, ...]] | None = None) -> np.ndarray:
    """Parse whitespace-separated decimal numbers.

    Args:
        body: ASCII bytes, e.g. the data section of an ascii ``.pcd``.
        columns: optional ``(ncols, keep)``: the values form rows of ``ncols`` and only the columns ``keep`` are
            parsed (the others are only counted); the result is then (rows, len(keep)) flattened in row order.
            Ignored (everything is parsed) when the value count is not a multiple of ``ncols``.
    Returns:
        (N,) float64 values in file order.
    Raises:
        ValueError: a token is not a number (the message names it).
    """
    if body.translate(None, _ALLOWED):
        return _select(_slow(body.split()), columns)
    buf = b" " + body + b" " * (_W + 8)
    chars = np.frombuffer(buf, dtype=np.uint8)
    sep = chars <= 32
    edges = np.flatnonzero(sep[1:] != sep[:-1])
    edges += 1
    starts, ends = edges[0::2], edges[1::2]
    if columns is not None and starts.size % columns[0] == 0 and len(columns[1]) < columns[0]:
        keep = list(columns[1])
        starts = starts.reshape(-1, columns[0])[:, keep].ravel()
        ends = ends.reshape(-1, columns[0])[:, keep].ravel()
    n = starts.size
    if n == 0:
        return np.zeros(0)
    lens = ends - starts
    long_tokens = np.flatnonzero(lens >= _W)
    if long_tokens.size > n // 8:
        return _select(_slow(body.split()), columns)
    unaligned = np.ndarray((chars.size - 8,), dtype="<u8", buffer=buf, strides=(1,))
    words = np.stack((unaligned[starts], unaligned[starts + 8]))  # (2, N): bytes 0-7 and 8-15 of each token
    if long_tokens.size:  # parsed one by one below; the vector path sees the token "0" instead
        words[:, long_tokens] = np.array([[0x2020202020202030], [0x2020202020202020]], dtype=_U)
        lens[long_tokens] = 1
    win = words.view(np.uint8)  # (2, N*8)
    dotcol = _first_column(np.flatnonzero(chars == 46), starts, ends)
    hasdot = dotcol < lens
    has_e = b"e" in body or b"E" in body
    mend = lens
    if has_e:
        ecol = _first_column(np.flatnonzero((chars | 0x20) == 101), starts, ends)
        hase = ecol < lens
        has_e = bool(hase.any())  # the exponents may all sit in columns that are not parsed
        mend = np.where(hase, ecol, lens)
    digits = win - np.uint8(48)
    nondigit = digits >= 10
    digits *= ~nondigit
    S = _swar8(digits.view(_U)).astype(np.int64)
    S = S[0] * 100_000_000 + S[1]
    S -= S % _POW10_I[_W - lens]  # drop the bytes after the token
    first = (words[0] & _U(0xFF)).astype(np.uint8)
    sign = (first == 45) | (first == 43)
    allowed = sign.astype(np.int64) + hasdot
    if has_e:
        e_raw = S % _POW10_I[_W - mend]
        S -= e_raw
        exponent = e_raw // _POW10_I[_W - lens]
        col = np.minimum(ecol + 1, _W - 1)
        e_sign = win.reshape(-1)[(col >> 3) * (n * 8) + np.arange(n) * 8 + (col & 7)]
        exponent[e_sign == 45] *= -1
        allowed += hase.astype(np.int64) + (hase & ((e_sign == 45) | (e_sign == 43)) & (ecol + 1 < lens))
    dotc = np.where(hasdot, dotcol, mend)
    frac = S % _POW10_I[_W - dotc]
    S -= frac
    S //= 10
    S += frac  # the mantissa digits as one integer, the dot removed
    shift = (_W - 1) - dotc
    if has_e:
        shift -= np.where(hase, exponent, 0)  # value = S * 10^-shift
    values = _scale(S, shift)
    np.negative(values, out=values, where=first == 45)
    # every byte of a token that is not a digit must be a sign, the dot, the 'e' or its sign
    m0, m1 = _byte_masks(lens)
    nd = nondigit.view(_U)
    if not (np.array_equal(np.bitwise_count(nd[0] & m0) + np.bitwise_count(nd[1] & m1), allowed)
            and np.all(mend - sign - hasdot > 0)):
        return _select(_slow(body.split()), columns)
    if long_tokens.size:
        values[long_tokens] = _slow([buf[starts[i]:ends[i]] for i in long_tokens.tolist()])
    return values


def _scale(mantissa: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """mantissa * 10^-shift: one correctly rounded operation for |shift| <= 22, a table power beyond."""
    m = mantissa.astype(np.float64)
    ok = np.abs(shift) <= 22
    exact = np.where(shift >= 0, m / _POW10_F22[np.clip(shift, 0, 22)], m * _POW10_F22[np.clip(-shift, 0, 22)])
    if ok.all():
        return exact
    far = m * _POW10_ALL[np.clip(_POW10_ALL_OFFSET - shift, 0, _POW10_ALL.size - 1)]
    return np.where(ok, exact, far)


def _select(values: np.ndarray, columns) -> np.ndarray:
    if columns is None or values.size % columns[0] or len(columns[1]) >= columns[0]:
        return values
    return values.reshape(-1, columns[0])[:, list(columns[1])].ravel()
