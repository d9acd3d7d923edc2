"""Helpers for model plugins: a cache folder and the identity (hash) of weights on disk."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """``$SPEECHLAB_CACHE_DIR`` or ``$XDG_CACHE_HOME/speechlab`` or ``~/.cache/speechlab``, created."""
    root = os.environ.get("SPEECHLAB_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "speechlab"
    )
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def weights_digest(*paths: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 over the given files (folders: every file below them, in sorted order, with names)."""
    digest = hashlib.sha256()
    for root in map(Path, paths):
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for file in files:
            digest.update(file.relative_to(root).as_posix().encode() if root.is_dir() else file.name.encode())
            with open(file, "rb") as fh:
                while block := fh.read(chunk):
                    digest.update(block)
    return "sha256:" + digest.hexdigest()
