"""The clients' write-ahead log: sends durable before they go out, answers before they count."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from actors.storage import Location
from actors.wal import EVENTS, ROWS, WalSettings, WalWriter, list_files, outstanding, read_events, read_rows
from tests.s3server import s3_bucket


def row(key: str) -> dict[str, object]:
    return {
        "key": key,
        "model": "m",
        "status": "ok",
        "attempts": 1,
        "text": f"answer {key}",
        "finished_at": datetime.now(UTC),
    }


async def log_calls(writer: WalWriter, sent: list[str], answered: list[str]) -> None:
    await asyncio.gather(*(writer.sent(k, "m", "responses") for k in sent))
    await asyncio.gather(*(writer.answered(row(k)) for k in answered))


@pytest.fixture(scope="module")
def bucket() -> Iterator[str]:
    with s3_bucket() as uri:
        yield uri


def test_a_send_without_an_answer_is_outstanding_and_rows_read_back(tmp_path: Path) -> None:
    writer = WalWriter(WalSettings(str(tmp_path), "sess"), "c1")
    asyncio.run(log_calls(writer, ["a", "b", "c"], ["a", "c"]))
    loc = Location(str(tmp_path))
    files = list_files(loc)
    assert {(f.kind, f.sealed) for f in files} == {(EVENTS, False), (ROWS, False)}  # still open
    assert all(f.session == "sess" and f.chain == "sess-c1" for f in files)
    left = outstanding(read_events(loc, files))
    assert left.rows() == [("sess-c1", "b", "m", "responses")]
    assert sorted(read_rows(loc, [f for f in files if f.kind == ROWS]).column("key").to_pylist()) == [
        "a",
        "c",
    ]
    writer.seal()
    assert {f.sealed for f in list_files(loc)} == {True}


def test_segments_seal_by_rows_and_a_key_sent_twice_in_a_chain_is_counted_once(tmp_path: Path) -> None:
    writer = WalWriter(WalSettings(str(tmp_path), "sess", seal_rows=2), "c1")

    async def calls() -> None:
        for k in ("a", "b", "c"):  # one commit each: a, b fill segment 1, which seals
            await writer.sent(k, "m", "s")
            await writer.answered(row(k))
        await writer.sent("d", "m", "s")
        await writer.sent("d", "m", "s")  # a retry

    asyncio.run(calls())
    writer.seal()
    loc = Location(str(tmp_path))
    files = list_files(loc)
    assert len([f for f in files if f.kind == ROWS]) == 2  # a, b sealed at 2 rows; then c
    assert outstanding(read_events(loc, files))["key"].to_list() == ["d"]
    assert outstanding(read_events(loc, files), answered=["d"]).is_empty()


def test_a_log_cut_off_mid_write_reads_up_to_the_cut(tmp_path: Path) -> None:
    writer = WalWriter(WalSettings(str(tmp_path), "sess"), "c1")
    asyncio.run(log_calls(writer, ["a", "b"], ["a", "b"]))
    writer.seal()
    loc = Location(str(tmp_path))
    files = list_files(loc)
    for f in files:
        with open(f.path, "ab") as fh:
            fh.write(b"\xff\xff\xff\xff\x80\x00" if f.kind == ROWS else b"S\tz\tm")  # a half-written tail
    assert sorted(read_rows(loc, [f for f in files if f.kind == ROWS]).column("key").to_pylist()) == [
        "a",
        "b",
    ]
    assert outstanding(read_events(loc, files)).is_empty()  # the cut line "S z" is not a send


def test_what_was_committed_survives_a_sigkill_of_the_writer(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from datetime import UTC, datetime
        from actors.wal import WalSettings, WalWriter

        async def main():
            w = WalWriter(WalSettings({str(tmp_path)!r}, "sess"), "c1")
            await asyncio.gather(*(w.sent(f"k{{i}}", "m", "st") for i in range(50)))
            await asyncio.gather(*(w.answered({{"key": f"k{{i}}", "status": "ok", "finished_at": datetime.now(UTC)}})
                                   for i in range(0, 50, 2)))
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], check=False)
    assert proc.returncode == -signal.SIGKILL
    loc = Location(str(tmp_path))
    files = list_files(loc)
    rows = read_rows(loc, [f for f in files if f.kind == ROWS]).column("key").to_pylist()
    left = outstanding(read_events(loc, files), rows)
    assert sorted(rows) == sorted(f"k{i}" for i in range(0, 50, 2))
    assert sorted(left["key"]) == sorted(f"k{i}" for i in range(1, 50, 2))


def test_on_an_object_store_every_commit_is_a_whole_segment(bucket: str) -> None:
    uri = f"{bucket}/wal"
    writer = WalWriter(WalSettings(uri, "sess"), "c1")
    asyncio.run(log_calls(writer, ["a", "b"], ["b"]))
    loc = Location(uri)
    files = list_files(loc)
    assert files and all(f.sealed for f in files)  # nothing is ever open on S3
    assert len([f for f in files if f.kind == EVENTS]) == 2  # one commit for the sends, one for the answer
    assert outstanding(read_events(loc, files))["key"].to_list() == ["a"]
    assert read_rows(loc, [f for f in files if f.kind == ROWS]).column("key").to_pylist() == ["b"]


def test_a_location_child_keeps_the_uri_that_reopens_it(tmp_path: Path) -> None:
    assert Location(str(tmp_path)).child("wal").uri == os.path.join(str(tmp_path), "wal")
    remote = Location("s3://bucket/run?endpoint_override=127.0.0.1:9000&scheme=http").child("wal")
    assert remote.uri == "s3://bucket/run/wal?endpoint_override=127.0.0.1:9000&scheme=http"
    assert json.dumps(remote.uri)  # plain data: it travels to client actors
