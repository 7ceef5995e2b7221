"""Device settings of the analysis stages: `cpu`, or `cuda` on a GPU of the Ray cluster."""

from __future__ import annotations

import logging
import re

from actors.errors import ConfigError

log = logging.getLogger(__name__)


def require_gpu(key: str, device: str, *, autoscaled: bool) -> None:
    """Check a `cuda` setting before work starts: the value's form, and a GPU somewhere in Ray.

    The driver itself may have no GPU (a CPU head node); the work runs in Ray tasks and
    actors that ask for one, so the cluster's resources are what counts. A local Ray
    without a GPU never gets one, so that is an error; a cluster joined by address may
    have GPU nodes that its autoscaler starts on demand (`cluster.yaml`'s `gpu_worker`
    starts at zero), so there the work waits for one, and the log says so.
    """
    if not re.fullmatch(r"cuda(:\d+)?", device):
        raise ConfigError(f"config key '{key}': must be 'cpu' or 'cuda', got '{device}'")
    import ray

    if ray.is_initialized() and ray.cluster_resources().get("GPU", 0) >= 1:
        return
    if not autoscaled:
        raise ConfigError(f"config key '{key}': '{device}' needs a GPU in the Ray cluster, and it has none")
    log.warning(
        "%s=%s: no GPU in the cluster yet; waiting for the autoscaler to start a GPU node", key, device
    )
