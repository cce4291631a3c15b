"""Where stored assets live: a local folder or an object store (`s3://bucket/prefix`), through universal-pathlib.

One write is one object: the value is serialised to bytes first, then stored in a single operation
(a rename of a finished temporary file on a local disk; on an object store `pipe_file`: a single PUT,
or from 100 MiB a multipart upload completed only once every part is stored and aborted when one
fails; either makes an object visible whole or not at all), so a failed run never leaves half a file
nor destroys the previous version. S3 credentials and endpoint come from the standard AWS variables
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL_S3`), which MLflow's artifact
client reads too.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from upath import UPath

LOCAL_PROTOCOLS = ("", "file", "local")


def store_path(uri: str | Path) -> UPath:
    """The store at `uri`: a local path or any fsspec URL (`s3://bucket/prefix`)."""
    from upath import UPath

    return UPath(uri)


def is_local(path: UPath) -> bool:
    return path.protocol in LOCAL_PROTOCOLS


def local(path: UPath) -> Path:
    """The local filesystem path of a local store path."""
    return Path(path.path)


def write_atomically(path: UPath, data: bytes) -> None:
    """Store `data` at `path` in one step: temporary sibling + rename locally, `pipe_file` elsewhere (not
    `write_bytes`: after a failed part its file object never aborts the multipart upload, which stays behind)."""
    if not is_local(path):
        path.fs.pipe_file(path.path, data)
        return
    target = local(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def move(src: UPath, dst: UPath) -> None:
    """Move a stored object (or a legacy folder) to `dst` on the same store."""
    if is_local(src):
        local(dst).parent.mkdir(parents=True, exist_ok=True)
        os.replace(local(src), local(dst))
    else:
        src.fs.mv(src.path, dst.path, recursive=src.is_dir())


def size_of(path: UPath) -> int:
    """Bytes stored at `path` (a folder: everything under it)."""
    if is_local(path):
        p = local(path)
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
    return int(path.fs.du(path.path))


def delete_tree(path: UPath) -> None:
    """Delete a stored object, or a folder (prefix) and everything under it."""
    if is_local(path):
        p = local(path)
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    else:
        path.fs.rm(path.path, recursive=True)
