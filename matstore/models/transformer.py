"""A composition transformer: an autoregressive decoder over (element, count) tokens (issue 14).

A composition is the token sequence ``BOS, (e1, c1), ..., (ek, ck), EOS`` with its elements in
a canonical order, pymatgen's formula order (Pauling electronegativity, then symbol; elements
without one last: ``compositions.elements.sort_order``), stored in the config so a version says
what order it learned. One token per (element, count) pair: ``3 + rank * max_count + count - 1``.

Decisions (written once, here):
- The order is enforced, not only learned: after an element of rank r only elements of rank > r
  (or EOS) may follow, in training (the cross-entropy is over the allowed tokens) and sampling
  alike, so every sample is a composition, no element repeats, and each composition has exactly
  one sequence. EOS is not allowed first; after ``max_elements`` elements only EOS is.
- The vocabulary is the one-hot encoding's (85 elements, counts 1..8): the transformer trains on
  the same rows as the GANs and is compared with them on equal terms.
- Pre-layer-norm blocks, learned positions, causal self-attention; sampling keeps a key/value
  cache and drops finished rows, so a batch costs about its mean length in forward steps.
- Sampling: temperature and nucleus (top-p) from the config; each step draws one uniform number
  per row of the batch from the caller's torch.Generator (all rows, finished or not), so a batch
  is a pure function of (weights, generator seed, batch size).
- A chemical system (``elements``) is masked sampling: tokens of other elements get probability 0
  and the rest are renormalised (the model's conditional distribution restricted to the system).
  ``all_elements`` also forbids EOS until every element of the system is placed; with the order
  enforced that fixes which element comes at each step, so only the counts are sampled.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..elements85 import ELEMENTS_85, MAX_COUNT
from . import loops
from .errors import ModelConfigError
from .family import FitData, FitResult, TorchFamily, register
from .nucleus import nucleus

PAD, BOS, EOS, FIRST = 0, 1, 2, 3   # FIRST: the first (element, count) token


def canonical_order() -> tuple[str, ...]:
    """The 85 one-hot elements in pymatgen's formula order (electronegativity, then symbol)."""
    from ..compositions.elements import sort_order  # noqa: PLC0415

    return tuple(sort_order(ELEMENTS_85))


@dataclass
class TransformerConfig:
    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 4
    d_ff: int = 512
    dropout: float = 0.1
    max_elements: int = 8
    max_count: int = MAX_COUNT
    order: tuple[str, ...] = field(default_factory=canonical_order)
    temperature: float = 1.0     # sampling: logits / temperature
    top_p: float = 1.0           # sampling: smallest token set with this much probability

    def __post_init__(self):
        self.order = tuple(str(s) for s in self.order)
        from ..compositions.elements import Z_OF  # noqa: PLC0415

        bad = [s for s in self.order if s not in Z_OF]
        if bad or len(set(self.order)) != len(self.order):
            raise ModelConfigError(f"transformer order: unknown or repeated elements {bad[:5]}")
        if self.d_model % self.n_heads:
            raise ModelConfigError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ModelConfigError(f"temperature must be > 0 and top_p in (0, 1], got "
                                   f"{self.temperature}, {self.top_p}")
        for k in ("d_model", "n_layers", "n_heads", "d_ff", "max_elements", "max_count"):
            if int(getattr(self, k)) < 1:
                raise ModelConfigError(f"transformer {k} must be at least 1")

    @property
    def vocab(self) -> int:
        return FIRST + len(self.order) * self.max_count

    @property
    def max_len(self) -> int:   # BOS + elements (the targets: elements + EOS)
        return self.max_elements + 1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["order"] = list(self.order)
        return d


class Block(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.h = c.n_heads
        self.ln1, self.ln2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model)
        self.proj = nn.Linear(c.d_model, c.d_model)
        self.ff = nn.Sequential(nn.Linear(c.d_model, c.d_ff), nn.GELU(), nn.Linear(c.d_ff, c.d_model))
        self.drop = nn.Dropout(c.dropout)
        self.p = c.dropout

    def _heads(self, x):   # (B, T, 3d) -> three (B, h, T, d/h)
        b, t, _ = x.shape
        return x.view(b, t, 3, self.h, -1).permute(2, 0, 3, 1, 4)

    def forward(self, x, cache: list | None = None):
        """Training (cache None): causal attention over x (B, T, d). Sampling: x is (B, 1, d),
        cache a [k, v] pair (or [None, None]) of the earlier positions, extended in place."""
        q, k, v = self._heads(self.qkv(self.ln1(x)))
        if cache is None:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.p if self.training else 0.0)
        else:
            if cache[0] is not None:
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            cache[0], cache[1] = k, v
            a = F.scaled_dot_product_attention(q, k, v)   # one query: no mask needed
        b, _, t, _ = a.shape
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, -1)))
        return x + self.drop(self.ff(self.ln2(x)))


class CompositionTransformer(nn.Module):
    """tokens (B, T) -> logits (B, T, vocab) of the next token, the disallowed ones at -inf."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = c = config
        self.tok = nn.Embedding(c.vocab, c.d_model)
        self.pos = nn.Embedding(c.max_len, c.d_model)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.ln = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab)
        self.drop = nn.Dropout(c.dropout)
        from ..compositions.elements import Z_OF  # noqa: PLC0415

        # numpy, then CPU tensors: built on the meta device (bounds.model_values) torch's meta
        # arange / floor_divide import its compiler stack (seconds)
        z_of_rank = np.array([Z_OF[s] for s in c.order], np.int64)
        rank_of_z = np.full(max(Z_OF.values()) + 1, -1, np.int64)
        rank_of_z[z_of_rank] = np.arange(len(c.order))
        token_rank = np.concatenate([np.full(FIRST, -1), np.arange(c.vocab - FIRST) // c.max_count])
        # not state: rebuilt from the config (the stored weights stay the learned ones only)
        self.register_buffer("z_of_rank", torch.from_numpy(z_of_rank), persistent=False)
        self.register_buffer("rank_of_z", torch.from_numpy(rank_of_z), persistent=False)
        self.register_buffer("token_rank", torch.from_numpy(token_rank.astype(np.int64)), persistent=False)

    # -- tokens ----------------------------------------------------------------------------
    def encode(self, z: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Padded compositions (z, counts (n, k)) -> (tokens int64 (n, max_len + 1) as
        BOS..EOS then PAD, encodable bool (n,)): elements outside the order, counts above
        max_count or more than max_elements elements are not encodable (rows all PAD)."""
        c = self.config
        z = np.asarray(z, np.int64)
        cnt = np.asarray(counts, np.int64)
        present = (z > 0) & (cnt > 0)
        rank = self.rank_of_z.numpy()[np.where(present, z, 0)]
        ok = ((~present | ((rank >= 0) & (cnt <= c.max_count))).all(1)
              & (present.sum(1) >= 1) & (present.sum(1) <= c.max_elements))
        key = np.where(present, rank, np.iinfo(np.int64).max)
        order = np.argsort(key, axis=1, kind="stable")
        rank, cnt, present = (np.take_along_axis(a, order, 1) for a in (rank, cnt, present))
        n, k = z.shape
        tok = np.zeros((n, c.max_len + 1), np.int64)
        tok[:, 0] = BOS
        body = np.where(present, FIRST + rank * c.max_count + cnt - 1, PAD)[:, :c.max_elements]
        tok[:, 1:1 + body.shape[1]] = body
        tok[np.arange(n), 1 + present.sum(1).clip(max=c.max_elements)] = EOS
        tok[~ok] = PAD
        return tok, ok

    def allowed(self, prev: torch.Tensor, step: int) -> torch.Tensor:
        """(B, vocab) bool: tokens that may follow prev (B,) at position step (0 = after BOS)."""
        c = self.config
        r = self.token_rank[prev]                        # -1 for BOS
        ok = self.token_rank[None, :] > r[:, None]       # later elements only (specials: -1)
        ok[:, :FIRST] = False
        ok[:, EOS] = prev != BOS
        if step >= c.max_elements:
            ok[:, FIRST:] = False
        return ok

    def _mask_all(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, vocab) allowed-token mask for every position of teacher-forced inputs."""
        c = self.config
        r = self.token_rank[tokens]                      # (B, T)
        ok = self.token_rank[None, None, :] > r[..., None]
        ok[..., :FIRST] = False
        ok[..., EOS] = tokens != BOS
        if tokens.shape[1] > c.max_elements:
            ok[:, c.max_elements:, FIRST:] = False
        return ok

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        x = self.drop(self.tok(tokens) + self.pos(torch.arange(t, device=tokens.device)))
        for blk in self.blocks:
            x = blk(x)
        logits = self.head(self.ln(x))
        return logits.masked_fill(~self._mask_all(tokens), float("-inf"))

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced cross-entropy (mean per predicted token, PAD ignored) of (B, T) rows."""
        inp, tgt = tokens[:, :-1], tokens[:, 1:]
        logits = self(inp)
        keep = tgt != PAD
        return F.cross_entropy(logits[keep], tgt[keep])

    # -- sampling --------------------------------------------------------------------------
    def _step(self, tok: torch.Tensor, pos: int, caches: list) -> torch.Tensor:
        x = self.tok(tok)[:, None] + self.pos.weight[pos]
        for blk, cache in zip(self.blocks, caches):
            x = blk(x, cache)
        return self.head(self.ln(x[:, 0]))

    def system_masks(self, elements, all_elements: bool = False) -> list[torch.Tensor] | None:
        """Per sampling step, the (vocab,) tokens a chemical system allows (None: no system)."""
        c = self.config
        if not elements:
            return None
        from ..compositions.elements import Z_OF  # noqa: PLC0415

        syms = [str(e) for e in elements]
        bad = [s for s in syms if s not in Z_OF or int(self.rank_of_z[Z_OF[s]]) < 0]
        if bad or len(set(syms)) != len(syms) or len(syms) > c.max_elements:
            raise ModelConfigError(f"chemical system {'-'.join(syms)}: elements {bad} are outside this "
                                   f"transformer's vocabulary, repeat, or exceed {c.max_elements}")
        ranks = sorted(int(self.rank_of_z[Z_OF[s]]) for s in syms)
        rank = self.token_rank
        base = torch.zeros(c.vocab, dtype=torch.bool, device=rank.device)
        base[:FIRST] = True
        base |= torch.isin(rank, torch.tensor(ranks, device=rank.device))
        if not all_elements:
            return [base] * (c.max_elements + 1)
        masks = []
        for step in range(c.max_elements + 1):
            m = torch.zeros_like(base)
            if step < len(ranks):
                m |= rank == ranks[step]
            elif step == len(ranks):
                m[EOS] = True
            masks.append(m)
        return masks

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, device=None,
               temperature: float | None = None, top_p: float | None = None,
               elements=None, all_elements: bool = False):
        """n compositions as (z int64 (n, max_elements), counts int64 (n, max_elements)), numpy,
        atomic numbers in the canonical order, 0-padded. elements: element symbols of a chemical
        system to sample within (masked sampling; all_elements: each sample holds all of them)."""
        c = self.config
        masks = self.system_masks(elements, all_elements)
        temperature = c.temperature if temperature is None else float(temperature)
        top_p = c.top_p if top_p is None else float(top_p)
        device = torch.device(device) if device is not None else self.head.weight.device
        gdev = generator.device if generator is not None else device
        z = torch.zeros(n, c.max_elements, dtype=torch.long, device=device)
        counts = torch.zeros_like(z)
        rows = torch.arange(n, device=device)            # the rows still sampling
        prev = torch.full((n,), BOS, dtype=torch.long, device=device)
        caches = [[None, None] for _ in self.blocks]
        for step in range(c.max_elements + 1):
            u = torch.rand(n, generator=generator, device=gdev).to(device)[rows]
            if not len(rows):
                continue   # keep drawing: the generator's state stays independent of the rows
            logits = self._step(prev, step, caches).float()
            ok = self.allowed(prev, step)
            if masks is not None:
                ok &= masks[step].to(ok.device)
            logits = logits.masked_fill(~ok, float("-inf"))
            tok = nucleus(logits / temperature, top_p, u)
            el = tok >= FIRST
            if step < c.max_elements:
                k = tok[el] - FIRST
                z[rows[el], step] = self.z_of_rank[k // c.max_count]
                counts[rows[el], step] = k % c.max_count + 1
            if not bool(el.all()):        # finished rows leave the batch and its caches
                rows, prev = rows[el], tok[el]
                for cache in caches:
                    cache[0], cache[1] = cache[0][el], cache[1][el]
            else:
                prev = tok
        return z.cpu().numpy(), counts.cpu().numpy()


# --- training and the family ------------------------------------------------------------------
def fit_transformer(module, tok_train: np.ndarray, tok_val: np.ndarray, *, epochs: int = 50,
                    batch_size: int = 256, lr: float = 1e-3, patience: int = 5,
                    weight_decay: float = 0.0, max_steps: int | None = None, device=None,
                    seed: int = 0, progress: bool = True, threads: int | None = loops.DEFAULT_TRAIN_THREADS,
                    label: str = "train transformer") -> loops.History:
    """Teacher forcing with cross-entropy (CompositionTransformer.loss) on token rows; AdamW with
    a cosine schedule over ``epochs``; keeps the state with the best validation loss and stops
    after ``patience`` epochs without a better one. Reproducible like fit_wgan (fixed threads)."""
    device = loops.resolve_device(device)
    with loops.reproducible(threads):
        torch.manual_seed(seed)   # dropout draws from the global generator, seeded here
        module.to(device)
        tt = torch.as_tensor(tok_train, dtype=torch.long, device=device)
        tv = torch.as_tensor(tok_val, dtype=torch.long, device=device)
        opt = loops.optimizer("adamw", module.parameters(), lr, weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)

        def val_loss() -> float:   # mean per predicted token over all validation rows
            module.eval()
            total, n = 0.0, 0
            with torch.no_grad():
                for i in range(0, len(tv), 4096):
                    part = tv[i:i + 4096]
                    m = int((part[:, 1:] != 0).sum())
                    total += float(module.loss(part)) * m
                    n += m
            return total / max(n, 1)

        return loops.fit_loop(module, len(tt), lambda idx: module.loss(tt[idx]), val_loss, opt=opt,
                         sched=sched, epochs=epochs, batch_size=batch_size, patience=patience,
                         max_steps=max_steps, seed=seed, device=device, progress=progress,
                         label=label, shown="CE")


class TransformerFamily(TorchFamily):
    """A composition language model: learns (element, count) token rows of the compositions the
    8x85 maps hold; samples compositions directly (no thresholding)."""

    name, config, module = "transformer", TransformerConfig, CompositionTransformer
    generator, inputs = True, "tokens"
    # the per-draw options CompositionTransformer.sample takes (temperature, top_p, ...)
    sampling_options = tuple(p for p in inspect.signature(CompositionTransformer.sample).parameters
                             if p not in ("self", "n", "generator", "device"))

    def encode(self, batch, featurizer, config):
        from ..features import onehot  # noqa: PLC0415

        _, ok = onehot.encode(batch)   # every generator learns the rows the 8x85 encoding holds
        tokens, ok_t = self.build(config).encode(batch.z, batch.counts)
        ok = np.asarray(ok, bool) & np.asarray(ok_t, bool)
        return tokens[ok], ok

    def fit(self, module, data: FitData) -> FitResult:
        hp, sp, x = data.hyper, data.split, data.x
        hist = fit_transformer(module, x[sp.train], x[sp.val], epochs=hp["epochs"],
                               batch_size=hp["batch_size"], lr=hp["lr"], patience=hp["patience"],
                               weight_decay=hp.get("weight_decay", 0.0), threads=hp.get("threads"),
                               max_steps=data.max_steps, device=data.device, seed=data.seed,
                               progress=data.progress, label=data.label)
        from ..training.sample_metrics import composition_metrics  # noqa: PLC0415

        z, counts = module.sample(int(hp["n_eval_samples"]),
                                  torch.Generator(device=data.device).manual_seed(data.seed), data.device)
        ids = data.batch.composition_id
        sample = composition_metrics(z, counts, ids[sp.train], known_ids=data.known_ids(),
                                     leave_out_ids=np.concatenate([ids[sp.val], ids[sp.test]]))
        return FitResult(module, {"sample": sample, "history": hist.to_dict()})

    def card(self, config, hyperparams):
        cfg = self.make_config(config)
        return {"inputs": {"featurizer": "tokens", "shape": [cfg.max_len], "labels": None,
                           "meaning": "BOS, (element, count) tokens in the config's element order, EOS"},
                "outputs": {"featurizer": "tokens", "shape": [cfg.vocab], "labels": None,
                            "meaning": "next-token logits; sample() returns (z, counts) rows"},
                "latent_dim": None}

    def sample(self, loaded, n, generator, device, **sampling):
        if device is not None and str(device) != loaded.device:
            loaded.to(device)
        return loaded.module.sample(n, generator, device or loaded.device, **sampling)

    def decode(self, samples, tolerance, batch_no, first_sample):
        from .. import samples as decoding  # noqa: PLC0415

        return decoding.decode_rows(*samples, batch_no, first_sample)


register(TransformerFamily())
