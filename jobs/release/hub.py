"""A Hugging Face Hub dataset id as a local folder, for `specstress import` (the optional `hub` extra).

specstress itself never needs the network: a local folder is read as it is, and only a
source that is no local folder but reads as a Hub id (`owner/name`) is downloaded, into the
Hub client's own cache, and only its Parquet files and card.
"""

from __future__ import annotations

import re
from pathlib import Path

from actors.errors import SpecstressError

try:  # the `hub` extra
    from huggingface_hub import snapshot_download
except ImportError:
    snapshot_download = None

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
"""owner/name, as the Hub spells a repository."""
PATTERNS = ["*.parquet", "**/*.parquet", "README.md"]
"""What an import reads of a Hub dataset."""


def local_source(source: str) -> tuple[Path, str]:
    """(the local folder to read, where it came from) for `specstress import SOURCE`."""
    path = Path(source)
    if path.exists() or not HUB_ID.match(source):
        return path, str(path.resolve())
    where = f"import: {source} is no local folder"
    if snapshot_download is None:
        raise SpecstressError(
            f"{where}; to read it as a Hugging Face Hub dataset id install the `hub` extra "
            f"(scripts/install hub), or download it first: hf download {source} --repo-type dataset "
            "--local-dir DIR"
        )
    try:
        folder = snapshot_download(repo_id=source, repo_type="dataset", allow_patterns=PATTERNS)
    except Exception as exc:  # the Hub client's own errors: offline, not found, gated, network
        raise SpecstressError(
            f"{where}, and as a Hugging Face Hub dataset id it could not be downloaded: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    return Path(folder), f"hf://datasets/{source}"
