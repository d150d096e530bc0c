"""Torch weights as stored: the model card + state_dict in plain containers, read back with
``torch.load(weights_only=True)`` (nothing loaded can run code) and checked key by key and shape
by shape against the module the config builds."""

from __future__ import annotations

import io
from typing import Any

from .errors import WeightsError

WEIGHTS_FORMAT = "matstore-torch-weights/1"   # torch weights: {"format", "card", "state_dict"}


def torch_bytes(module, card: dict | None = None) -> bytes:
    import torch  # noqa: PLC0415

    buf = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    # plain containers only, so torch.load(weights_only=True) reads the card too
    torch.save({"format": WEIGHTS_FORMAT, "card": card or {}, "state_dict": state}, buf)
    return buf.getvalue()


def load_torch(module, weights: bytes, ref: str, kind: str):
    """module with the stored state loaded (eval mode); WeightsError names what does not fit."""
    import torch  # noqa: PLC0415

    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (any unpickling failure means unreadable weights)
        raise WeightsError(f"model {ref}: weights are not a readable torch state_dict: {e}") from None
    state = state_dict_of(state)
    check_state(ref, kind, module.state_dict(), state)
    module.load_state_dict(state)
    module.eval()
    return module


def state_dict_of(saved: Any) -> Any:
    """The state_dict inside torch weights: a card + state_dict (WEIGHTS_FORMAT) or, as saved
    before model cards, the plain state_dict."""
    if isinstance(saved, dict) and saved.get("format") == WEIGHTS_FORMAT and "state_dict" in saved:
        return saved["state_dict"]
    return saved


def check_state(ref: str, kind: str, expected: dict, got: Any) -> None:
    if not isinstance(got, dict):
        raise WeightsError(f"model {ref}: weights are a {type(got).__name__}, not a state_dict")
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    if missing or extra:
        raise WeightsError(f"model {ref}: weights do not fit the {kind} config: missing "
                           f"{missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected "
                           f"{extra[:5]}{'...' if len(extra) > 5 else ''}")
    for k, v in expected.items():
        if tuple(got[k].shape) != tuple(v.shape):
            raise WeightsError(f"model {ref}: weight {k} has shape {tuple(got[k].shape)}, the "
                               f"{kind} config needs {tuple(v.shape)}")
