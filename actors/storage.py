"""A directory on any pyarrow filesystem (local path, NFS, s3://, gs://) with atomic writes.

Local filesystems get write-to-hidden-temp-then-rename. Object stores have no rename, but an
upload is atomic: an object appears only once its PUT (or multipart upload) completes, so
a uniquely named object gives readers the same guarantee. The content is built in a local
scratch file first and uploaded only when complete, so a writer that fails half way never
starts an upload (a failed upload is deleted). Everything that reads run data goes through
a `Location`, never through a bare path, so the same code serves both.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Callable
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq


class Location:
    """A directory addressed by a local path or a URI."""

    def __init__(self, uri: str, fs: pafs.FileSystem | None = None) -> None:
        if fs is None:
            if "://" in uri:
                fs, path = pafs.FileSystem.from_uri(uri)
            else:
                fs, path = pafs.LocalFileSystem(), os.path.abspath(uri)
        else:
            path = uri
        self.fs: pafs.FileSystem = fs
        self.path: str = path.rstrip("/")
        self.uri: str = uri if "://" in uri else self.path
        """What reopens this directory in another process (a URI keeps its query, e.g. an endpoint)."""

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def child(self, name: str) -> Location:
        loc = Location(f"{self.path}/{name}", self.fs)
        base, sep, query = self.uri.partition("?")
        loc.uri = f"{base.rstrip('/')}/{name}{sep}{query}"
        return loc

    def join(self, name: str) -> str:
        return f"{self.path}/{name}"

    def makedirs(self) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def exists(self, name: str) -> bool:
        return self.fs.get_file_info(self.join(name)).type != pafs.FileType.NotFound

    def list_files(self, suffix: str = "") -> list[str]:
        """Full paths of the visible files directly inside, sorted; hidden temp files are skipped."""
        selector = pafs.FileSelector(self.path, allow_not_found=True)
        return sorted(
            info.path
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File
            and not info.base_name.startswith(".")
            and info.base_name.endswith(suffix)
        )

    def write_atomic(self, name: str, write: Callable[[Any], None]) -> None:
        """Write `name` so readers see it whole or not at all. `write` gets an output stream."""
        final = self.join(name)
        if not self.is_local:
            with tempfile.TemporaryDirectory(prefix="specstress-upload-") as scratch:
                local = os.path.join(scratch, "object")
                with pa.OSFile(local, "wb") as sink:
                    write(sink)
                try:
                    pafs.copy_files(local, final, pafs.LocalFileSystem(), self.fs)
                except BaseException:
                    with contextlib.suppress(OSError):
                        self.fs.delete_file(final)
                    raise
            return
        tmp = self.join(f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        with self.fs.open_output_stream(tmp) as sink:
            write(sink)
        self.fs.move(tmp, final)

    def write_text(self, name: str, text: str) -> None:
        self.write_atomic(name, lambda sink: sink.write(text.encode()))

    def read_text(self, name: str) -> str | None:
        if not self.exists(name):
            return None
        with self.fs.open_input_stream(self.join(name)) as src:
            return src.read().decode()

    def delete(self, name: str) -> None:
        if self.exists(name):
            self.fs.delete_file(self.join(name))

    def parquet_file(self, path: str) -> pq.ParquetFile:
        """A Parquet file at `path` (a full path on this filesystem), for streaming by row group."""
        return pq.ParquetFile(self.fs.open_input_file(path))

    def scan_parquet(self, path: str) -> pl.LazyFrame:
        """A Parquet file at `path` as a lazy frame: polars' reader locally, pyarrow's on object stores."""
        if self.is_local:
            return pl.scan_parquet(path)
        return pl.scan_pyarrow_dataset(pads.dataset(path, format="parquet", filesystem=self.fs))
