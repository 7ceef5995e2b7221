"""Device settings of the analysis stages: `cpu`, or `cuda` on a GPU of the Ray cluster."""

from __future__ import annotations

import re

from actors.errors import ConfigError


def require_gpu(key: str, device: str) -> None:
    """Check a `cuda` setting before work starts: the value's form, and a GPU somewhere in Ray.

    The driver itself may have no GPU (a CPU head node); the work runs in Ray tasks and
    actors that ask for one, so the cluster's resources are what counts.
    """
    if not re.fullmatch(r"cuda(:\d+)?", device):
        raise ConfigError(f"config key '{key}': must be 'cpu' or 'cuda', got '{device}'")
    import ray

    if not ray.is_initialized() or ray.cluster_resources().get("GPU", 0) < 1:
        raise ConfigError(f"config key '{key}': '{device}' needs a GPU in the Ray cluster, and it has none")
