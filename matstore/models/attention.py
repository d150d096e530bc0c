"""Composition attention regressor (Roost / CrabNet class) on element fractions.

Each element present in a composition is a token: its pretrained element embedding (mat2vec,
200-d, from the ``elementembeddings`` package) projected to ``d_model``, plus CrabNet's
sinusoidal encodings of its fraction and of its log-fraction (each ``d_model / 2`` wide,
concatenated). A transformer encoder (padding mask) mixes the tokens; the token outputs are
pooled with the element fractions as weights, and a residual MLP maps the pooled vector to the
standardized target (``y_mean + y_std * head``, buffers fitted on the training targets).

Decisions:
- Input is the ``fractions`` featurizer's flat vector (86 columns, ElemNet's elements); forward()
  turns it into tokens (the nonzero columns, padded to the batch's largest element count), so
  ``predict``, ``generate --predict`` and stored featurizations need nothing new.
- The embedding table is a buffer of the state_dict, filled at build time from elementembeddings:
  a stored version loads (weights_only) without the package's data files. mat2vec covers all 86
  columns today; an element it lacks gets a zero vector and is flagged in ``missing``: its token
  is then a learned per-element offset (``offset``, zero-initialized) plus its fraction encoding,
  so such a composition still predicts a finite number.
- Fraction encodings are continuous (CrabNet indexes a 5000-row table; we evaluate the same
  sinusoid at f * 5000 without rounding), log-fraction as CrabNet: 0.0025 * log2(f)^2, clamped.
- No nested-tensor fast path (``enable_nested_tensor=False``): the same rows give the same numbers
  whether they are padded or not, in train and eval alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from .cnn import TargetScaled
from .errors import ModelConfigError
from .family import FOR_STORED_WEIGHTS, register
from .regressors import RegressorFamily

RESOLUTION = 5000  # CrabNet's fractional-encoding resolution
EVAL_TOKENS = 8    # eval-mode padding (the one-hot maps' limit; more elements still pad further)


@dataclass
class AttentionConfig:
    n_inputs: int = 86               # the fractions featurizer's columns (ElemNet's 86 elements)
    embedding: str = "mat2vec"       # elementembeddings name of the pretrained element vectors
    embedding_dim: int = 200         # their width (mat2vec: 200)
    d_model: int = 96
    n_layers: int = 3
    n_heads: int = 4
    d_ff: int = 192                  # transformer feed-forward width
    dropout: float = 0.0             # inside the transformer
    head: tuple[int, ...] = (256, 128, 64)   # residual MLP widths after pooling

    def __post_init__(self):
        self.head = tuple(int(w) for w in self.head)
        if self.d_model % 2 or self.d_model % self.n_heads:
            raise ModelConfigError(f"attention: d_model {self.d_model} must be even and divisible "
                                   f"by n_heads {self.n_heads}")
        if min(self.n_layers, self.n_heads, self.d_ff, self.d_model, *(self.head or (1,))) < 1:
            raise ModelConfigError("attention: sizes must be at least 1")

    def to_dict(self) -> dict:
        return asdict(self)


def input_elements(n_inputs: int) -> tuple[str, ...]:
    """The element symbol of each input column (the fractions featurizer's order)."""
    from ..features.fractions import ELEMENTS_86  # noqa: PLC0415

    if n_inputs != len(ELEMENTS_86):
        raise ModelConfigError(f"attention reads the 'fractions' featurizer ({len(ELEMENTS_86)} columns), "
                               f"got n_inputs={n_inputs}")
    return ELEMENTS_86


class EmbeddingUnavailable(ModelConfigError):
    """The pretrained element embeddings cannot be read (package or data file missing)."""


@lru_cache(maxsize=4)
def embedding_table(name: str, elements: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(len(elements), dim) float32 vectors of ``name`` and a bool mask of elements it lacks (zeros)."""
    try:
        from elementembeddings.core import Embedding  # noqa: PLC0415

        emb = Embedding.load_data(name)
    except Exception as e:  # noqa: BLE001 (ImportError, a missing data file, an unknown name)
        raise EmbeddingUnavailable(f"element embedding {name!r} unavailable from elementembeddings: {e}") from e
    vectors = emb.embeddings
    dim = len(next(iter(vectors.values())))
    table = np.zeros((len(elements), dim), np.float32)
    missing = np.array([s not in vectors for s in elements], bool)
    for i, s in enumerate(elements):
        if not missing[i]:
            table[i] = np.asarray(vectors[s], np.float32)
    return table, missing


def sinusoid(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """(...,) positions -> (..., dim) sin/cos features (Vaswani et al.), continuous in pos."""
    angle = pos.unsqueeze(-1) / _wavelengths(dim, pos.dtype, pos.device)
    return torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1).flatten(-2)   # sin, cos interleaved


@lru_cache(maxsize=16)
def _wavelengths(dim: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # computed once per width (it was 5 % of generate's time, recomputed at every call)
    i = torch.arange(0, dim, 2, dtype=dtype, device=device)
    return torch.pow(torch.tensor(50.0, dtype=dtype, device=device), 2 * i / dim)


class ResidualMLP(nn.Module):
    """Linear + LeakyReLU blocks with skip connections (projected where widths change), CrabNet's
    ResidualNetwork, then a linear output."""

    def __init__(self, d_in: int, widths: tuple[int, ...]):
        super().__init__()
        dims = (d_in, *widths)
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.skips = nn.ModuleList(nn.Linear(a, b, bias=False) if a != b else nn.Identity()
                                   for a, b in zip(dims[:-1], dims[1:]))
        self.act = nn.LeakyReLU()
        self.out = nn.Linear(dims[-1], 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for fc, skip in zip(self.fcs, self.skips):
            h = self.act(fc(h)) + skip(h)
        return self.out(h).squeeze(-1)


class CompositionAttention(TargetScaled):
    """x (B, 86) element fractions -> (B,) property value."""

    minmax_inputs = False

    def __init__(self, config: AttentionConfig):
        super().__init__()
        self.config = c = config
        elements = input_elements(c.n_inputs)
        self._init_scaling((c.n_inputs,))  # x scaling unused (fractions); y_mean / y_std used
        try:
            if FOR_STORED_WEIGHTS.get():   # the state_dict holds the vectors: no elementembeddings/umap
                raise EmbeddingUnavailable("filled from the stored weights")
            table, missing = embedding_table(c.embedding, elements)
            self.embedding_loaded = True
        except EmbeddingUnavailable:  # a stored version's state_dict fills the table on load
            table = np.zeros((len(elements), c.embedding_dim), np.float32)
            missing = np.zeros(len(elements), bool)
            self.embedding_loaded = False
        if table.shape[1] != c.embedding_dim:
            raise ModelConfigError(f"attention: embedding {c.embedding!r} is {table.shape[1]}-d, "
                                   f"config says embedding_dim={c.embedding_dim}")
        self.register_buffer("table", torch.as_tensor(table))
        self.register_buffer("missing", torch.as_tensor(missing))
        self.offset = nn.Parameter(torch.zeros(c.n_inputs, c.d_model))  # used for missing elements only
        self.project = nn.Linear(table.shape[1], c.d_model)
        # learned weights of the two fraction encodings (CrabNet's emb/pos scalers)
        self.frac_scale = nn.Parameter(torch.ones(2))
        layer = nn.TransformerEncoderLayer(c.d_model, c.n_heads, c.d_ff, c.dropout, batch_first=True,
                                           norm_first=False)
        self.encoder = nn.TransformerEncoder(layer, c.n_layers, enable_nested_tensor=False)
        self.head = ResidualMLP(c.d_model, c.head)

    @torch.no_grad()
    def fit_scaling(self, x: np.ndarray, y: np.ndarray, minmax: bool | None = None) -> None:
        if not self.embedding_loaded:  # training needs the real vectors; loading does not
            embedding_table(self.config.embedding, input_elements(self.config.n_inputs))
        super().fit_scaling(x, y, minmax=False)

    @staticmethod
    def tokens(x: torch.Tensor, min_tokens: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fraction vectors -> (column index, fraction, pad mask) per token, padded to the batch's
        largest element count, at least ``min_tokens`` (at least one token: an empty row gets one
        zero-fraction token)."""
        x = torch.nan_to_num(x, nan=0.0).clamp_min(0.0)
        present = x > 0
        n = max(1, int(present.sum(1).max())) if len(x) else 1
        if min_tokens:
            n = min(max(n, min_tokens), x.shape[1])
        order = torch.argsort(present.to(torch.int8), dim=1, descending=True, stable=True)[:, :n]
        frac = x.gather(1, order)
        pad = frac <= 0
        pad[:, 0] = False  # never an all-masked row (softmax over nothing is NaN)
        return order, frac, pad

    def forward_tokens(self, idx: torch.Tensor, frac: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """(B, L) element columns, fractions and pad mask -> (B,) property value (token order free)."""
        if self.training:
            h = self.project(self.table[idx]) + self.offset[idx] * self.missing[idx].unsqueeze(-1)
        else:   # each element's vector once, then gathered: the per-token 200->d projection was
            # 6 % of predict (values move by float32 rounding only)
            h = (self.project(self.table) + self.offset * self.missing.unsqueeze(-1))[idx]
        h = self.encoder(h + self.fraction_encoding(frac), src_key_padding_mask=pad)
        w = frac.masked_fill(pad, 0.0)
        w = w / w.sum(1, keepdim=True).clamp_min(1e-12)
        pooled = (h * w.unsqueeze(-1)).sum(1)
        return self.unscale_y(self.head(pooled))

    def fraction_encoding(self, frac: torch.Tensor) -> torch.Tensor:
        """(B, L) fractions -> (B, L, d_model) encodings. Computed once per distinct fraction of
        the batch (a batch holds few: 1/2, 1/3, 2/5, ...), then gathered: elementwise, so the same
        numbers as computing every token."""
        d = self.config.d_model
        values, where = torch.unique(frac, return_inverse=True)
        f = values.clamp(min=1.0 / RESOLUTION, max=1.0)
        logf = (0.0025 * torch.log2(f) ** 2).clamp(min=1.0 / RESOLUTION, max=1.0)
        enc = torch.cat([self.frac_scale[0] * sinusoid(f * RESOLUTION, d // 2),
                         self.frac_scale[1] * sinusoid(logf * RESOLUTION, d // 2)], dim=-1)
        return enc[where]

    @staticmethod
    def bucket_keys(x: np.ndarray) -> np.ndarray:
        """Each row's own token count (its number of elements, at least 1): loops.predict_module
        passes rows of one count together, in fixed-shape passes, through forward_bucket."""
        x = np.nan_to_num(np.asarray(x, np.float32), nan=0.0)
        return np.maximum((x > 0).sum(1), 1)

    def forward_bucket(self, x: torch.Tensor, n_tokens: int) -> torch.Tensor:
        """forward() of rows with at most n_tokens elements, computed at exactly n_tokens tokens
        (not EVAL_TOKENS): a row's value depends only on itself and the pass's fixed shape."""
        idx, frac, pad = self.tokens(x, n_tokens)
        return self.forward_tokens(idx[:, :n_tokens], frac[:, :n_tokens], pad[:, :n_tokens])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # eval pads to a fixed token count, so a row's prediction does not depend on the element
        # count of the rows that share its batch (training pads to the batch's largest: faster)
        return self.forward_tokens(*self.tokens(x, 0 if self.training else EVAL_TOKENS))


def n_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class AttentionFamily(RegressorFamily):
    name, config, module = "attention", AttentionConfig, CompositionAttention


register(AttentionFamily())
