import math

import pytest
import torch

from coopmap.losses.robust import penalty, robust_penalty, robust_penalty_sq, scalar_penalty, signed_log1p


def test_robust_penalty_closed_form():
    # alpha = 1 is the pseudo-Huber loss sqrt((x/c)^2 + 1) - 1
    x = torch.tensor([3.0], dtype=torch.float64)
    assert robust_penalty(x, alpha=1.0, c=2.0).item() == pytest.approx(math.sqrt(9 / 4 + 1) - 1, abs=1e-12)
    # alpha = 0.5 (MapAnything's): |a-2|/a * (((x/c)^2/|a-2| + 1)^(a/2) - 1) = 3 ((x^2/(1.5 c^2) + 1)^0.25 - 1)
    expected = 3.0 * ((0.04 / (1.5 * 0.0025) + 1) ** 0.25 - 1)
    assert robust_penalty(torch.tensor(0.2, dtype=torch.float64)).item() == pytest.approx(expected, abs=1e-12)


def test_robust_penalty_is_quadratic_near_zero_and_sublinear_far():
    x = torch.tensor([1e-4], dtype=torch.float64)
    assert robust_penalty(x, 0.5, 0.05).item() == pytest.approx(1e-8 / (2 * 0.05**2), rel=1e-5)
    big = robust_penalty(torch.tensor([1e4, 2e4], dtype=torch.float64))
    assert big[1] / big[0] == pytest.approx(2**0.5, rel=1e-2)  # grows like |x|^alpha


def test_penalties_have_finite_zero_gradient_at_zero():
    for fn in (lambda r: penalty(r, robust=True), lambda r: penalty(r, robust=False),
               lambda r: signed_log1p(r).sum(-1), lambda r: scalar_penalty(r[..., 0], robust=True)):
        r = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
        out = fn(r).sum()
        out.backward()
        assert out.item() == 0.0
        assert torch.isfinite(r.grad).all()


def test_robust_gradcheck_float64():
    sq = torch.rand(7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: robust_penalty_sq(s, 0.5, 0.05), (sq,))
    r = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: penalty(v, robust=True, alpha=0.7, c=0.3), (r,))
    assert torch.autograd.gradcheck(signed_log1p, (r,))


def test_l1_penalty_is_the_residual_norm():
    r = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, -2.0]])
    torch.testing.assert_close(penalty(r, robust=False), torch.tensor([5.0, 2.0]))


def test_signed_log1p_keeps_direction_and_compresses_norm():
    x = torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(signed_log1p(x), x / 5 * math.log(6))
    torch.testing.assert_close(signed_log1p(torch.tensor([[-2.0]])), torch.tensor([[-math.log(3)]]))
    tiny = torch.tensor([1e-9, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(signed_log1p(tiny), tiny, rtol=1e-8, atol=0)


@pytest.mark.parametrize("alpha,c", [(0.0, 1.0), (2.0, 1.0), (0.5, 0.0)])
def test_robust_penalty_rejects_bad_parameters(alpha, c):
    with pytest.raises(ValueError, match="alpha"):
        robust_penalty(torch.ones(1), alpha, c)
