"""The ascii body parser (pandas fast path, strict fallback) against Python's own float() on many formats."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopmap.data.ascii_floats import parse_floats

FORMATS = ["%.9g", "%.10g", "%g", "%.6f", "%.3e", "%d"]


def _reference(text: bytes) -> np.ndarray:
    return np.array([float(t) for t in text.split()], dtype=np.float64)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=60),
       fmt=st.sampled_from(FORMATS), sep=st.sampled_from([" ", "\n", "  ", "\t", " \r\n"]))
def test_matches_python_float_on_random_values(values, fmt, sep):
    text = sep.join(fmt % (int(v) if abs(v) < 1e15 else 0) if fmt == "%d" else fmt % v for v in values).encode()
    got, ref = parse_floats(text), _reference(text)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=5e-16, atol=0)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(ref))


def test_packed_rgb_float_bits_survive_exactly():
    """OPV2V's rgb floats are subnormals (R << 16): their bits must come back exactly via float32."""
    red = np.arange(256, dtype=np.uint32)
    packed = np.concatenate([red << 16, red * 0x10101]).view(np.float32)
    text = " ".join(format(v, ".10g") for v in packed.astype(np.float64)).encode()
    got = parse_floats(text).astype(np.float32).view(np.uint32)
    np.testing.assert_array_equal(got, packed.view(np.uint32))


def test_known_edge_cases():
    text = b"1.5 -2.25 3 -4. .5 +7 0 -0.0 12345678.9 1e-39 -2.5E+3 1e5 0.000001 -0.0001962552638 nan -inf"
    got = parse_floats(text)
    ref = _reference(text)
    np.testing.assert_array_equal(got[:-2], ref[:-2])
    assert np.isnan(got[-2]) and got[-1] == -np.inf


def test_long_tokens_among_short_ones():
    vals = np.random.default_rng(0).normal(size=500) * 1e-4
    text = " ".join(format(v, ".12f" if i % 7 == 0 else ".6g") for i, v in enumerate(vals)).encode()
    np.testing.assert_array_equal(parse_floats(text), _reference(text))


@pytest.mark.parametrize("bad", [b"1 2 1.2.3", b"1 - 2", b"1 . 2", b"1 1-2 3", b"1 e5 3", b"1 2 3x", b"1 2,3"])
def test_malformed_token_is_named(bad):
    with pytest.raises(ValueError, match="not a number"):
        parse_floats(bad)


def test_empty_body():
    assert parse_floats(b"").size == 0 and parse_floats(b" \n ").size == 0


def test_column_selection_equals_the_full_parse():
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(300, 4)) * [10, 10, 1, 1e-39]
    text = "\n".join(" ".join(format(v, ".10g") for v in r) for r in rows).encode()
    full = parse_floats(text)
    np.testing.assert_array_equal(parse_floats(text, (4, (0, 1, 2))), full.reshape(-1, 4)[:, :3].ravel())
    np.testing.assert_allclose(parse_floats(text, (4, (3,))), full[3::4], rtol=5e-16)  # 1e-39: within 2 ulp
    assert parse_floats(b"1 2 3 4 5", (4, (0,))).size == 5  # not whole rows: everything is returned


def test_the_fast_path_handles_opv2v_rows(monkeypatch):
    """Rows as OPV2V / Open3D write them never need the slow token-by-token path."""
    import coopmap.data.ascii_floats as af

    def refuse(body):
        raise AssertionError("strict path taken")

    monkeypatch.setattr(af, "_strict", refuse)
    rows = "108.419838 10.76305389 3.804714441 1.515285687e-38\n-0.5 -12.25 -1.9 0\n1 2e-05 -3E+2 9.18354962e-41\n"
    ref = _reference(rows.encode())
    np.testing.assert_array_equal(parse_floats(rows.encode(), (4, (0, 1, 2, 3))), ref)
    np.testing.assert_array_equal(parse_floats(rows.encode(), (4, (0, 1, 2))), ref.reshape(-1, 4)[:, :3].ravel())
    np.testing.assert_array_equal(parse_floats(rows.encode(), (4, (3, 0))), ref.reshape(-1, 4)[:, [3, 0]].ravel())


@pytest.mark.parametrize("body, expect", [
    (b"1 2 3 4\n5 6 7\n", [1, 2, 3, 4, 5, 6, 7]),            # short last row: NaN-filled by pandas -> strict
    (b"1 2 3 4\n5 6 7 8 9\n", [1, 2, 3, 4, 5, 6, 7, 8, 9]),  # long row: pandas refuses -> strict
    (b" 1  2 3 4 \n5\t6 7 8\r\n", [1, 2, 3, 4, 5, 6, 7, 8]),  # odd whitespace
    (b"1 2 3 nan\n5 6 7 8\n", [1, 2, 3, np.nan, 5, 6, 7, 8]),  # a real nan token survives
    (b'1 2 3 4\n"5" 6 7 8\n', None),                         # quotes are not numbers
    (b"1 2 3 4\n5 NA 7 8\n", None),                          # pandas' NA spelling is not a number
])
def test_fallback_agrees_with_the_strict_parser(body, expect):
    if expect is None:
        with pytest.raises(ValueError, match="not a number"):
            parse_floats(body, (4, (0, 1, 2, 3)))
        return
    got = parse_floats(body, (4, (0, 1, 2, 3)))
    np.testing.assert_array_equal(got, np.array(expect, dtype=np.float64))


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=4, max_size=80),
       fmt=st.sampled_from(FORMATS[:-1]))
def test_fast_path_matches_python_float_on_rows(values, fmt):
    rows = [values[i:i + 4] for i in range(0, len(values) - len(values) % 4, 4)]
    text = "\n".join(" ".join(fmt % v for v in r) for r in rows).encode()
    got, ref = parse_floats(text, (4, (0, 1, 2, 3))), _reference(text)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(ref))


def test_crlf_lines_take_the_fast_path(monkeypatch):
    import coopmap.data.ascii_floats as af

    monkeypatch.setattr(af, "_strict", lambda body: (_ for _ in ()).throw(AssertionError("strict path taken")))
    got = parse_floats(b"1.5 2 3 4\r\n5 -6 7 8e-3\r\n", (4, (0, 1, 3)))
    np.testing.assert_array_equal(got, [1.5, 2, 4, 5, -6, 8e-3])
