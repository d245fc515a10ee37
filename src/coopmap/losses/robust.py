"""Penalties shared by every loss: the robust penalty rho, plain L1 and the signed log-space transform.

The robust penalty is the general adaptive robust loss (Barron 2019) with shape ``alpha`` and scale ``c``:

    rho(x) = |alpha - 2| / alpha * (((x / c)^2 / |alpha - 2| + 1)^(alpha / 2) - 1)

written here as a function of the **squared** residual norm, so it is smooth everywhere (its gradient at 0 is 0,
never NaN), also for vector residuals. ``rho ~ x^2 / (2 c^2)`` for ``|x| << c`` and grows like ``|x|^alpha`` far out.
"""

from __future__ import annotations

import torch


def robust_penalty_sq(sq: torch.Tensor, alpha: float = 0.5, c: float = 0.05) -> torch.Tensor:
    """Robust penalty of residuals given their **squared** norms.

    Args:
        sq: (*B,) squared residual norms (>= 0), any unit u^2.
        alpha: shape, in (0, 2) (0.5 = MapAnything's; 1 = pseudo-Huber; alpha -> 2 tends to L2).
        c: scale, in the residual's unit u (where the penalty turns from quadratic to robust).
    Returns:
        (*B,) penalties, 0 where sq == 0, smooth in sq.
    """
    if not 0.0 < alpha < 2.0 or c <= 0.0:
        raise ValueError(f"robust penalty needs 0 < alpha < 2 and c > 0, got alpha={alpha}, c={c}")
    b = abs(alpha - 2.0)
    y = sq / (c * c * b) + 1.0  # >= 1
    if alpha == 0.5:
        powered = torch.sqrt(torch.sqrt(y))  # y^(1/4), much faster than pow on CPU
    elif alpha == 1.0:
        powered = torch.sqrt(y)
    else:
        powered = torch.pow(y, alpha / 2.0)
    return (b / alpha) * (powered - 1.0)


def robust_penalty(x: torch.Tensor, alpha: float = 0.5, c: float = 0.05) -> torch.Tensor:
    """Robust penalty of scalar residuals. (*B,) -> (*B,); see :func:`robust_penalty_sq`."""
    return robust_penalty_sq(x * x, alpha, c)


def penalty(residual: torch.Tensor, robust: bool, alpha: float = 0.5, c: float = 0.05) -> torch.Tensor:
    """Penalty of vector residuals: their Euclidean norm (L1 of the distances) or the robust penalty.

    Args:
        residual: (*B, D) residual vectors (D = 1 for scalars).
        robust: False = ``|r|`` (the norm; its gradient at r = 0 is 0), True = ``rho(|r|)``.
    Returns:
        (*B,) penalties.
    """
    if robust:
        return robust_penalty_sq(residual.square().sum(-1), alpha, c)
    return torch.linalg.vector_norm(residual, dim=-1)


def scalar_penalty(x: torch.Tensor, robust: bool, alpha: float = 0.5, c: float = 0.05) -> torch.Tensor:
    """Penalty of scalar residuals (*B,) -> (*B,): ``|x|`` or ``rho(x)``."""
    return robust_penalty(x, alpha, c) if robust else x.abs()


def signed_log1p(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Log-space transform of vectors: ``x / |x| * log1p(|x|)`` (direction kept, norm compressed).

    Args:
        x: (*B, D) vectors (D = 1 for scalars: ``sign(x) log1p(|x|)``).
    Returns:
        (*B, D); smooth at x = 0 (the factor ``log1p(n) / n`` tends to 1; its gradient there is the identity).
    """
    n = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(eps)
    return x * (torch.log1p(n) / n)  # log1p(n) / n -> 1 as n -> 0, accurately (log1p)


def safe_sqrt(sq: torch.Tensor) -> torch.Tensor:
    """sqrt with a zero (not NaN) gradient at 0. (*B,) -> (*B,)."""
    pos = sq > 0
    return torch.sqrt(torch.where(pos, sq, torch.ones_like(sq))) * pos


def norm_penalty(sq: torch.Tensor, robust: bool, log_space: bool, alpha: float = 0.5, c: float = 0.05):
    """Penalty of vectors against target 0, from their squared norms ``sq`` (*B,): the penalty of
    ``f(x)`` with ``f`` = signed_log1p (``|f(x)| = log1p|x|``) in log space, else of ``x``. (*B,)."""
    if log_space:
        g = torch.log1p(safe_sqrt(sq))
        return robust_penalty_sq(g * g, alpha, c) if robust else g
    return robust_penalty_sq(sq, alpha, c) if robust else safe_sqrt(sq)
