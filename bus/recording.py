"""Recordings: MCAP files that hold the exact bus bytes of every message.

Each message is stored as ``join_frames(frames)`` exactly as it crossed the bus, so a
replay publishes bit-identical frames. The file uses MCAP profile ``drivestack``:
one Schema per message type (named by the message name, encoding
``drivestack-msgpack``, data a JSON description with the version), one Channel per
topic (metadata ``msg_type`` and ``version``), and Metadata records for the run
(command line, config, git revision, ...).

Crash safety. A writer killed before ``close()`` leaves a file without summary or
footer, which ``mcap.reader.make_reader`` cannot open, and the chunk still being
built in memory is lost. So :class:`RecordingWriter` flushes: it writes the MCAP
header at once, and a background thread closes the open chunk and hands it to the
OS every ``flush_interval_s`` (0.5 s by default) while messages are pending. Page
cache survives a SIGKILL, so a killed recorder loses at most the last interval
(plus the time to compress one chunk); ``fsync=True`` extends that to power loss.
Schema and Channel records go into the same chunk as the first message of their
topic, so every message that reaches the disk can be interpreted.

:class:`Recording` reads a finished file through its summary (chunk index,
statistics) and seeks to the chunks it needs. A file whose writer died has no
summary; it is scanned record by record up to the first torn or corrupt record
(chunk CRCs are checked), which rebuilds the same index, so both kinds of file are
read by the same code and messages always come out in log-time order.
"""

from __future__ import annotations

import heapq
import io
import itertools
import json
import os
import struct
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from mcap.data_stream import ReadDataStream
from mcap.exceptions import McapError
from mcap.opcode import Opcode
from mcap.reader import SeekingReader
from mcap.records import Channel, Chunk, Header, McapRecord, Message, Metadata
from mcap.stream_reader import breakup_chunk
from mcap.writer import CompressionType, Writer

from bus.schema import MessageType, message_type, struct_fields
from bus.serialization import Frame, decode, join_frames, peek_type, split_frames

PROFILE = "drivestack"
MESSAGE_ENCODING = "drivestack-msgpack"
_MAGIC = bytes([137, 77, 67, 65, 80, 48, 13, 10])
_RECORD_HEAD = struct.Struct("<BQ")  # opcode, body length
_WIRE = ("bus.serialization.join_frames: u32 frame count, u64 size of each frame, the "
         "frames; frame 0 is msgpack [name, version, *fields], arrays follow as raw "
         "little-endian C-ordered frames")
_COMPRESSION = {"lz4": CompressionType.LZ4, "zstd": CompressionType.ZSTD,
                "none": CompressionType.NONE}
# What parsing a damaged record can raise: mcap's own errors, short struct reads,
# CRC mismatches and bad UTF-8 (ValueError), lz4 on a corrupt frame (RuntimeError).
_DAMAGED = (McapError, ValueError, struct.error, RuntimeError)


class RecordingError(Exception):
    """A recording that cannot be read (not MCAP, empty, not drivestack's, corrupt)
    or written (the background flush failed). The message names the file."""


# --------------------------------------------------------------------------- writing
def _schema_text(mt: MessageType) -> bytes:
    """The Schema record's data: enough for a person or another tool to know what the
    bytes are, while the authoritative definition stays in ``bus.messages``."""
    fields = [{"name": f.name, "kind": f.kind} for f in struct_fields(mt.cls)]
    return json.dumps({"name": mt.name, "version": mt.version, "fields": fields,
                       "wire": _WIRE}).encode()


class RecordingWriter:
    """Writes bus messages to an MCAP file; use as a context manager or call close().

    ``metadata`` (if given) is stored as the Metadata record named ``"run"``.
    ``chunk_size`` bounds a chunk's uncompressed bytes; a chunk is also closed at
    every flush, so with the default interval a chunk holds at most 0.5 s of data.
    Thread-safe: the flush thread shares the file, so every call takes one lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        metadata: dict[str, str] | None = None,
        compression: Literal["lz4", "zstd", "none"] = "lz4",
        chunk_size: int = 4 * 1024 * 1024,
        flush_interval_s: float = 0.5,
        fsync: bool = False,
    ) -> None:
        if compression not in _COMPRESSION:
            raise ValueError(f"compression must be one of {', '.join(_COMPRESSION)}, "
                             f"not {compression!r}")
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be > 0, not {flush_interval_s}")
        self.path = Path(path)
        self._fsync = fsync
        self._lock = threading.Lock()
        self._channels: dict[str, tuple[int, str, int]] = {}  # topic -> id, name, version
        self._schemas: dict[tuple[str, int], int] = {}
        self._metadata_names: set[str] = set()
        self._dirty = False
        self._closed = False
        self._failure: BaseException | None = None
        self._file = open(self.path, "wb")  # noqa: SIM115  (closed in close())
        try:
            self._writer = Writer(self._file, chunk_size=chunk_size,
                                  compression=_COMPRESSION[compression])
            self._writer.start(profile=PROFILE, library="drivestack")
            with self._lock:
                self._flush_locked()  # the header is on disk before the first message
            if metadata is not None:
                self.add_metadata("run", metadata)
        except BaseException:  # e.g. the compression library is missing, bad metadata
            self._file.close()
            raise
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, args=(flush_interval_s,),
                                         name=f"flush {self.path.name}", daemon=True)
        self._flusher.start()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def write(
        self,
        topic: str,
        message: Sequence[Frame] | bytes | memoryview,
        log_time_ns: int,
        publish_time_ns: int | None = None,
        sequence: int = 0,
    ) -> None:
        """Record one message: its frames as received, or their ``join_frames`` form.

        The message must be a registered type at this build's version, and a topic
        keeps the type of its first message: a recording holds nothing it cannot
        describe. ``publish_time_ns`` defaults to ``log_time_ns``."""
        if isinstance(message, (bytes, bytearray, memoryview)):
            data = bytes(message)
            name, version = peek_type(split_frames(data))
        else:
            name, version = peek_type(message)
            data = join_frames(message)
        publish = log_time_ns if publish_time_ns is None else publish_time_ns
        if log_time_ns < 0 or publish < 0:
            raise ValueError(f"times must be >= 0 ns, got log {log_time_ns}, publish {publish}")
        with self._lock:
            self._check_open()
            channel_id = self._channel_for(topic, name, version)
            self._writer.add_message(channel_id, log_time_ns, data, publish, sequence)
            self._dirty = True

    def add_metadata(self, name: str, data: dict[str, str]) -> None:
        """Store a named string map (run command line, config text, git revision...).
        Written and flushed at once, so it survives a crash; names are unique."""
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise TypeError(f"metadata {name!r}: keys and values must be str")
        with self._lock:
            self._check_open()
            if name in self._metadata_names:
                raise ValueError(f"metadata {name!r} already written to {self.path}")
            self._metadata_names.add(name)
            self._writer.add_metadata(name, dict(data))
            self._flush_locked()

    def flush(self) -> None:
        """Hand everything written so far to the OS now (the thread does this anyway)."""
        with self._lock:
            self._check_open()
            self._flush_locked()

    def close(self) -> None:
        """Write the summary and footer and close the file; calling it again is a no-op."""
        if self._closed:
            return
        self._stop.set()
        self._flusher.join()
        with self._lock:
            self._closed = True
            try:
                self._writer.finish()
                self._file.flush()
                if self._fsync:
                    os.fsync(self._file.fileno())
            finally:
                self._file.close()
        if self._failure is not None:
            raise RecordingError(f"{self.path}: background flush failed: "
                                 f"{self._failure}") from self._failure

    def _channel_for(self, topic: str, name: str, version: int) -> int:
        known = self._channels.get(topic)
        if known is not None:
            if known[1:] != (name, version):
                raise ValueError(f"topic {topic} is recorded as {known[1]} v{known[2]}, "
                                 f"got {name} v{version}")
            return known[0]
        mt = message_type(name)
        if mt is None or mt.version != version:
            have = "unknown" if mt is None else f"v{mt.version}"
            raise ValueError(f"cannot record {name} v{version} on {topic}: this build "
                             f"knows {name} as {have}")
        schema_id = self._schemas.get((name, version))
        if schema_id is None:
            schema_id = self._writer.register_schema(name, MESSAGE_ENCODING,
                                                     _schema_text(mt))
            self._schemas[(name, version)] = schema_id
        channel_id = self._writer.register_channel(
            topic, MESSAGE_ENCODING, schema_id, {"version": str(version), "msg_type": name}
        )
        self._channels[topic] = (channel_id, name, version)
        return channel_id

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"recording {self.path} is closed")
        if self._failure is not None:
            raise RecordingError(f"{self.path}: background flush failed: "
                                 f"{self._failure}") from self._failure

    def _flush_locked(self) -> None:
        """Close the open chunk, push it to the OS, optionally to the disk."""
        self._writer.flush()
        if self._fsync:
            os.fsync(self._file.fileno())
        self._dirty = False

    def _flush_loop(self, interval_s: float) -> None:
        """Bound what a crash loses even when writes stop (no write triggers a flush)."""
        while not self._stop.wait(interval_s):
            with self._lock:
                if not self._dirty or self._closed:
                    continue
                try:
                    self._flush_locked()
                except OSError as exc:  # e.g. disk full: reported by the next call
                    self._failure = exc
                    return


# --------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class RecordedMessage:
    """One recorded message: ``data`` is ``join_frames`` of the frames as published."""

    topic: str
    log_time_ns: int
    publish_time_ns: int
    sequence: int
    data: bytes
    msg_name: str
    version: int

    def frames(self) -> list[memoryview]:
        """The frames exactly as they were on the bus (views into ``data``)."""
        return split_frames(self.data)

    def decode(self) -> Any:
        """The message object; DecodeError if this build cannot read it."""
        mt = message_type(self.msg_name)
        return decode(self.frames(), mt.cls if mt is not None else None)


@dataclass(frozen=True)
class _Channel:
    topic: str
    msg_name: str
    version: int


@dataclass(frozen=True)
class _ChunkRef:
    """Where a chunk starts, its log-time range and the channels it holds: enough to
    skip chunks for a topic or time filter and to merge the rest in log-time order."""

    offset: int
    start_ns: int
    end_ns: int
    channel_ids: frozenset[int]


@dataclass
class _Index:
    header: Header
    channels: dict[int, _Channel]
    chunks: list[_ChunkRef]
    counts: dict[int, int]
    metadata: dict[str, dict[str, str]]


def _channel(record: Channel, path: Path) -> _Channel:
    try:
        return _Channel(record.topic, record.metadata["msg_type"],
                        int(record.metadata["version"]))
    except (KeyError, ValueError):
        raise RecordingError(f"{path}: channel {record.topic} lacks msg_type/version "
                             "metadata (not written by drivestack)") from None


def _read_chunk(stream: IO[bytes]) -> tuple[Chunk, list[McapRecord]]:
    """Parse a Chunk record body from ``stream`` and unpack it, checking its CRC."""
    chunk = Chunk.read(ReadDataStream(stream))
    return chunk, breakup_chunk(chunk, validate_crc=True)


def _index_from_summary(f: IO[bytes], path: Path) -> _Index | None:
    """The index of a finished file, or None when the file has no usable summary.

    The closing magic is checked first: the tail of a torn file could otherwise be
    taken for a footer."""
    f.seek(0, io.SEEK_END)
    if f.tell() < 2 * len(_MAGIC):
        return None
    f.seek(-len(_MAGIC), io.SEEK_END)
    if f.read(len(_MAGIC)) != _MAGIC:
        return None
    f.seek(0)
    try:
        reader = SeekingReader(f)
        header = reader.get_header()
        summary = reader.get_summary()
        metadata = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
    except _DAMAGED:
        return None
    if summary is None or summary.statistics is None:
        return None
    chunks = [_ChunkRef(c.chunk_start_offset, c.message_start_time, c.message_end_time,
                        frozenset(c.message_index_offsets)) for c in summary.chunk_indexes]
    return _Index(header, {cid: _channel(c, path) for cid, c in summary.channels.items()},
                  chunks, dict(summary.statistics.channel_message_counts), metadata)


def _index_by_scan(f: IO[bytes], path: Path) -> _Index:
    """Rebuild the index by walking the records from the start, stopping cleanly at
    the first record that is torn (ends past the file) or damaged (bad CRC, ...):
    what precedes it is intact, so the result is a prefix of what was written."""
    size = os.fstat(f.fileno()).st_size
    pos = len(_MAGIC)
    f.seek(pos)
    header: Header | None = None
    index = _Index(Header("", ""), {}, [], {}, {})
    while pos + _RECORD_HEAD.size <= size:
        opcode, length = _RECORD_HEAD.unpack(f.read(_RECORD_HEAD.size))
        if pos + _RECORD_HEAD.size + length > size or opcode in (Opcode.DATA_END,
                                                                 Opcode.FOOTER):
            break
        body = io.BytesIO(f.read(length))
        try:
            if header is None:
                if opcode != Opcode.HEADER:
                    break
                header = index.header = Header.read(ReadDataStream(body))
            elif opcode == Opcode.CHUNK:
                chunk, records = _read_chunk(body)
                ids = set()
                for r in records:
                    if isinstance(r, Channel):
                        index.channels[r.id] = _channel(r, path)
                    elif isinstance(r, Message):
                        ids.add(r.channel_id)
                        index.counts[r.channel_id] = index.counts.get(r.channel_id, 0) + 1
                index.chunks.append(_ChunkRef(pos, chunk.message_start_time,
                                              chunk.message_end_time, frozenset(ids)))
            elif opcode == Opcode.METADATA:
                m = Metadata.read(ReadDataStream(body))
                index.metadata[m.name] = dict(m.metadata)
        except _DAMAGED:
            break
        pos += _RECORD_HEAD.size + length
    if header is None:
        raise RecordingError(f"{path}: MCAP file ends before its header record "
                             "(expected a drivestack recording)")
    return index


class Recording:
    """A recording opened for reading; use :meth:`open`, and close it (or ``with``).

    ``recovered`` is True when the file was not finished (its writer was killed) and
    was read by scanning; ``message_count`` is how many messages it holds (for a
    recovered file: how many were intact)."""

    def __init__(self, path: Path, f: IO[bytes], index: _Index, recovered: bool) -> None:
        self.path = path
        self.recovered = recovered
        self.message_count = sum(index.counts.values())
        self._file = f
        self._index = index

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Recording:
        """Open a finished or a crashed recording; RecordingError (one line naming the
        file) if it is neither, or cannot be opened at all."""
        p = Path(path)
        try:
            f = open(p, "rb")  # noqa: SIM115  (owned by the Recording)
        except FileNotFoundError:
            raise RecordingError(f"{p}: no such file (expected a drivestack MCAP "
                                 "recording)") from None
        except IsADirectoryError:
            raise RecordingError(f"{p}: not a file (expected a drivestack MCAP "
                                 "recording)") from None
        except OSError as exc:
            raise RecordingError(f"{p}: cannot read it: {exc.strerror or exc}") from None
        try:
            magic = f.read(len(_MAGIC))
            if not magic:
                raise RecordingError(f"{p}: empty file, expected an MCAP recording")
            if magic != _MAGIC:
                raise RecordingError(f"{p}: not an MCAP file (expected the MCAP magic "
                                     "bytes at the start)")
            index = _index_from_summary(f, p)
            recovered = index is None
            if index is None:
                index = _index_by_scan(f, p)
            if index.header.profile != PROFILE:
                raise RecordingError(f"{p}: MCAP profile {index.header.profile!r}, expected "
                                     f"{PROFILE!r} (not a drivestack recording)")
        except BaseException:
            f.close()
            raise
        return cls(p, f, index, recovered)

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def topics(self) -> dict[str, tuple[str, int, int]]:
        """Each recorded topic -> (message name, version, message count)."""
        return {ch.topic: (ch.msg_name, ch.version, self._index.counts.get(cid, 0))
                for cid, ch in self._index.channels.items()}

    def metadata(self) -> dict[str, dict[str, str]]:
        """Every Metadata record by name (``"run"`` holds the writer's ``metadata``)."""
        return {name: dict(data) for name, data in self._index.metadata.items()}

    def messages(
        self,
        topics: Sequence[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> Iterator[RecordedMessage]:
        """Messages in log-time order (ties in written order), optionally only those
        on ``topics`` with ``start_ns <= log_time < end_ns``. Topics absent from the
        recording select nothing.

        Chunks are read lazily and merged: a chunk is loaded only once no message
        already loaded is earlier than its start, so memory holds the overlapping
        chunks (and the next one, read ahead), not the file."""
        wanted = {cid for cid, ch in self._index.channels.items()
                  if topics is None or ch.topic in topics}
        chunks = sorted(
            (c for c in self._index.chunks if c.channel_ids & wanted
             and (start_ns is None or c.end_ns >= start_ns)
             and (end_ns is None or c.start_ns < end_ns)),
            key=lambda c: (c.start_ns, c.offset),
        )
        heap: list[tuple[int, int, Message]] = []
        tie = itertools.count()
        next_chunk = 0
        # The chunk after the one being merged is read and decompressed on a thread
        # meanwhile (file reads, lz4/zstd and the CRC release the GIL): a replay's
        # nodes and the reading share the machine's cores instead of taking turns.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcap-read") as reader:
            ahead: Future[list[Message]] | None = (
                reader.submit(self._messages_in, chunks[0]) if chunks else None)
            while True:
                while next_chunk < len(chunks) and (
                    not heap or chunks[next_chunk].start_ns <= heap[0][0]
                ):
                    assert ahead is not None
                    loaded = ahead.result()
                    next_chunk += 1
                    ahead = (reader.submit(self._messages_in, chunks[next_chunk])
                             if next_chunk < len(chunks) else None)
                    for m in loaded:
                        if (m.channel_id in wanted
                                and (start_ns is None or m.log_time >= start_ns)
                                and (end_ns is None or m.log_time < end_ns)):
                            heapq.heappush(heap, (m.log_time, next(tie), m))
                if not heap:
                    return
                m = heapq.heappop(heap)[2]
                ch = self._index.channels[m.channel_id]
                yield RecordedMessage(ch.topic, m.log_time, m.publish_time, m.sequence,
                                      m.data, ch.msg_name, ch.version)

    def _messages_in(self, ref: _ChunkRef) -> list[Message]:
        """The messages of one chunk. Positional reads (no shared file position), so
        any number of threads and iterators may read the file at once."""
        fd = self._file.fileno()
        try:
            head = os.pread(fd, _RECORD_HEAD.size, ref.offset)
            _, length = _RECORD_HEAD.unpack(head)
            body = os.pread(fd, length, ref.offset + _RECORD_HEAD.size)
            if len(body) != length:
                raise ValueError(f"the file ends {length - len(body)} bytes into it")
            _, records = _read_chunk(io.BytesIO(body))
        except _DAMAGED as exc:
            raise RecordingError(f"{self.path}: chunk at byte {ref.offset} is unreadable: "
                                 f"{exc}") from exc
        return [r for r in records if isinstance(r, Message)]
