"""Nucleus (top-p) sampling by inverse CDF over ranked probabilities, without ranking the whole
vocabulary when a bounded set of candidates gives the same token (the transformer's sampling)."""

from __future__ import annotations

import torch

NUCLEUS_CANDIDATES = 256   # tokens ranked per row before the full sort is needed (see _nucleus)


def nucleus(logits: torch.Tensor, top_p: float, u: torch.Tensor) -> torch.Tensor:
    """One token per row: inverse-CDF draw with uniform u from the top-p nucleus of softmax,
    over the probabilities in descending order (ties: lower token first).

    The same token as ranking the whole vocabulary, without ranking it: rows whose logits are all
    the same (the first step) are ranked once; otherwise the NUCLEUS_CANDIDATES most probable
    tokens are ranked, and a row takes that answer when its nucleus ends on a probability above
    the smallest candidate's (every token at least as probable as the nucleus's is then a
    candidate, in the same order and with the same cumulative sums); the other rows (a nucleus
    wider than the candidates, or top_p = 1, whose normaliser sums every token) rank all."""
    p = torch.softmax(logits, -1)
    if len(p) > 1 and bool((logits == logits[:1]).all()):
        top, idx = _ranked(p[:1])
        cum = _nucleus_cum(top, top_p)[0]
        return idx[0][torch.searchsorted(cum, u * cum[-1]).clamp(max=len(cum) - 1)]
    k = NUCLEUS_CANDIDATES
    if top_p >= 1 or k >= p.shape[1]:
        return _nucleus_ranked(*_ranked(p), top_p, u)
    top, idx = _ranked(p, k)
    tok = _nucleus_ranked(top, idx, top_p, u)
    cut = ((top.cumsum(-1) - top) < top_p).sum(1)        # nucleus size among the candidates
    inside = (cut < k) & (top.gather(1, (cut - 1).clamp(min=0)[:, None])[:, 0] > top[:, -1])
    if not bool(inside.all()):
        out = ~inside
        tok[out] = _nucleus_ranked(*_ranked(p[out]), top_p, u[out])
    return tok


def _ranked(p: torch.Tensor, k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The k (default all) largest probabilities of each row in descending order, equal ones by
    ascending token (a stable sort's order), with their tokens. One topk over unique int64 keys
    (a probability's float bits, then the token reversed) instead of a stable sort of floats."""
    n, v = p.shape
    keys = p.contiguous().view(torch.int32).to(torch.int64) * v + (v - 1 - torch.arange(v, device=p.device))
    _, idx = keys.topk(k or v, dim=-1, sorted=True)
    return p.gather(1, idx), idx


def _nucleus_cum(p: torch.Tensor, top_p: float) -> torch.Tensor:
    """Cumulative probabilities of ranked rows, zero past the nucleus."""
    cum = p.cumsum(-1)
    if top_p < 1:
        p = p.masked_fill(cum - p >= top_p, 0.0)     # keep the smallest set reaching top_p
        cum = p.cumsum(-1)
    return cum


def _nucleus_ranked(p: torch.Tensor, idx: torch.Tensor, top_p: float, u: torch.Tensor) -> torch.Tensor:
    cum = _nucleus_cum(p, top_p)
    pick = torch.searchsorted(cum, (u * cum[:, -1])[:, None]).clamp(max=p.shape[1] - 1)
    return idx.gather(1, pick)[:, 0]
