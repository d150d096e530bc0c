"""Resources are bounded before they are allocated: model sizes from a (received) config, the
tensor bytes a weights blob declares, hyperparameters and sample counts from flags.

- A model's size is measured by building it on torch's `meta` device (no memory) and counting
  parameters and buffers: more than MAX_PARAMS is refused before the real build (a config with
  `d_ff = 1e8` asked for 25.6 GB).
- A torch weights blob is a zip archive; the uncompressed size of every entry it declares is
  summed from the zip directory (nothing is inflated) and must fit the config's size (4 bytes a
  value, float64 allowed, plus the card): a 2 MB blob declaring a 2^29-float tensor reached
  2.7 GB inside torch.load.
- A hyperparameter or config field from a flag keeps its default's type; a positive default
  stays positive and at most MAX_FACTOR times the default (n_estimators=1e8, max_depth=-5,
  lr=-1, 1.5 trees, NaN are one-line errors).
"""

from __future__ import annotations

from functools import lru_cache

import io
import json
import math
import zipfile

from .errors import MatstoreError

MAX_PARAMS = 50_000_000          # ~200 MB of float32: 13x the largest shipped model
MAX_CONFIG_CHARS = 100_000       # a stored config's JSON
MAX_SAMPLES = 10**9              # generate -n: samples of one run
MAX_FACTOR = 1000                # a positive hyperparameter may grow this many times its default
CARD_BYTES = 1_000_000           # the weights' pickle (card, names) beside the tensors


class BoundsError(MatstoreError, ValueError):
    """A size or value beyond matstore's bounds; the message names it and the bound."""


def check_config_size(config) -> None:
    text = config if isinstance(config, str) else json.dumps(config, default=str)
    if len(text) > MAX_CONFIG_CHARS:
        raise BoundsError(f"model config is {len(text):,} characters, more than {MAX_CONFIG_CHARS:,}")


def model_values(kind: str, config, build) -> int:
    """Parameters + buffers of build(kind, config) measured on the meta device; BoundsError
    beyond MAX_PARAMS. build: the builder (models.build or a family's own)."""
    import torch  # noqa: PLC0415

    check_config_size(config)
    with torch.device("meta"), _shapes_only()():
        module = build(kind, config)
    n = sum(p.numel() for p in module.parameters()) + sum(b.numel() for b in module.buffers())
    if n > MAX_PARAMS:
        raise BoundsError(f"a {kind} with this config has {n:,} parameters, more than "
                          f"{MAX_PARAMS:,} (matstore.bounds.MAX_PARAMS)")
    return n


@lru_cache(maxsize=1)
def _shapes_only():
    """A torch function mode (per thread) for building a module on the meta device to count its
    parameters: random initial values are skipped and arange is made on the CPU, because their
    meta kernels import sympy and torch's compiler stack (1-3 s of generate's start-up)."""
    from torch.overrides import TorchFunctionMode  # noqa: PLC0415

    class ShapesOnly(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", None)
            if name in ("normal_", "uniform_", "log_normal_", "exponential_"):
                return args[0] if args else (kwargs or {})["tensor"]   # nn.init's or the method
            if name == "arange":   # meta arange goes through the same Python decompositions
                return func(*args, **{**(kwargs or {}), "device": "cpu"}).to("meta")
            return func(*args, **(kwargs or {}))

    return ShapesOnly


def check_weights_blob(weights: bytes, values: int, ref: str) -> None:
    """The blob's declared (uncompressed) size fits `values` parameters (8 bytes each at most)."""
    try:
        with zipfile.ZipFile(io.BytesIO(weights)) as z:
            declared = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, ValueError) as e:
        raise BoundsError(f"model {ref}: weights are not a torch zip archive ({e})") from None
    limit = 8 * values + CARD_BYTES
    if declared > limit:
        raise BoundsError(f"model {ref}: weights declare {declared:,} bytes, the config needs at "
                          f"most {limit:,}; refusing to load them")


def check_value(key: str, value, default):
    """value (from a flag) with its default's type and range; BoundsError names key."""
    def bad(why: str):
        return BoundsError(f"--hyper {key}={str(value)[:60]}: {why}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("expected true or false")
        return value
    if isinstance(value, bool) or (isinstance(default, (int, float)) and not isinstance(value, (int, float))):
        if default is not None:
            raise bad(f"expected a number like the default {default}")
    if isinstance(value, float) and not math.isfinite(value):
        raise bad("not a finite number")
    if isinstance(default, int) and isinstance(value, float):
        if not value.is_integer():
            raise bad(f"expected a whole number like the default {default}")
        value = int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if (default is None or (isinstance(default, (int, float)) and default > 0)) and value <= 0:
            raise bad("must be > 0")
        if isinstance(default, (int, float)) and default > 0 and value > MAX_FACTOR * default \
                and value > 10**6:
            raise bad(f"more than {MAX_FACTOR} times the default {default} (matstore.bounds)")
        if default is None and value > 10**9:
            raise bad("more than 10^9")
    return value


def check_samples(n) -> int:
    if n is None:
        return n
    if int(n) < 1 or int(n) > MAX_SAMPLES:
        raise BoundsError(f"-n {n}: samples of one run must be 1..{MAX_SAMPLES:,}")
    return int(n)
