"""Which torch device a command runs on: the one answer for generate, predict, train and demo."""

from __future__ import annotations

from .errors import MatstoreError


class DeviceError(MatstoreError, ValueError):
    """A device that is not there or not a device; the message names it."""


def resolve_device(device=None) -> str:
    """None, '' or 'auto' -> 'cuda' when torch sees a GPU, else 'cpu'. 'cpu', 'cuda' and 'cuda:N'
    are checked here, so a missing GPU is a clear error rather than torch's AssertionError."""
    import torch  # noqa: PLC0415

    if device is None or str(device).strip().lower() in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(str(device).strip())
    except (RuntimeError, ValueError):
        raise DeviceError(f"device {device!r} is not a device: use cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return "cpu"
    if dev.type != "cuda":
        raise DeviceError(f"device {device!r} is not supported: use cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {device!r}: cuda requested but torch.cuda.is_available() is False")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceError(f"device {device!r}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    return str(dev)
