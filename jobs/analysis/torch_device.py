"""torch, imported on demand, and the one check that a device string is usable (optional `embed` extra)."""

from __future__ import annotations

from typing import Any

from actors.errors import ConfigError


def torch_module() -> Any:
    """The torch module, or a ConfigError saying which extra provides it."""
    try:
        import torch  # type: ignore[import-not-found]
    except ImportError as e:
        raise ConfigError("device selection needs torch: pip install 'specstress[embed]'") from e
    return torch


def check_device(device: str) -> None:
    """Fail early, naming the device, when torch cannot use it."""
    torch = torch_module()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}': torch sees no CUDA GPU on this machine")
    torch.empty(1, device=device)
