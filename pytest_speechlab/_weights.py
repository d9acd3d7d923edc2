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


def local_model_path(params: dict, model: str, what: str = "a local folder or file") -> str | Path:
    """The ``model_path`` of a ``*/local`` model, which must exist on disk. A name that is not a
    local path (a model hub id, a cache name) is refused unless the variant opts in with
    ``allow_download = true``: otherwise a typo would quietly reach for the network."""
    value = params.get("model_path")
    if value is None or value == "":
        raise ValueError(f"{model} needs model_path: {what}, declared in a variant, e.g. "
                         f'[tool.speechlab.models.my-model] model = "{model}" model_path = "/path/to/weights"')
    path = Path(str(value)).expanduser()
    if path.exists():
        return path
    if params.get("allow_download") is True:
        return str(value)
    raise ValueError(f"{model}: model_path {str(value)!r} is not {what} that exists here; to let the backend "
                     "fetch a model by that name (a network access), set allow_download = true in the variant")
