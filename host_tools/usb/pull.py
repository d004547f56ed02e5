"""Pull a terminal's journal to a directory: resumable, skip-if-same, verified.

Two sources give the same raw bytes: `PortSource` (the USB service port,
through ServiceClient) and `ImageSource` (an SD card image or block device,
the journal at a byte offset).  `pull_journal` copies the superblock and every
segment into DIR/journal.bin, keeping DIR/pull-state.json so that a run cut
short (the cable pulled) resumes where it stopped, and segments already pulled
whose SHA-256 still matches the device's are skipped.  It never parses
records; `verify_pulled_journal` hands the result to the independent verifier.
Progress goes to `progress(done_bytes, total_bytes)`, as mpremote does.
"""

import hashlib
import json
import os

from daozhang.agent.core.errors import DaozhangError, LocalError, RemoteError
from daozhang.agent.core.journal.layout import SUPERBLOCK_MAGIC, decode_superblock
from daozhang.agent.core.service.service_session import SUPERBLOCK_SIZE
from daozhang.host_tools.verify.journal import verify_journal
from daozhang.files import atomic_write

STATE_FILE = "pull-state.json"
JOURNAL_FILE = "journal.bin"
STATE_VERSION = 1
DEFAULT_CHUNK = 32768
_SEGMENT_ATTEMPTS = 4


class SegmentKeepsChanging(RemoteError):
    """A segment's bytes changed under every attempt to pull it."""


def read_image_geometry(path, offset=0):
    """(segment_size, segment_count) from the superblock at `offset` of `path`."""
    fd = os.open(path, os.O_RDONLY)
    try:
        head = os.pread(fd, SUPERBLOCK_SIZE, offset)
    finally:
        os.close(fd)
    if head[:len(SUPERBLOCK_MAGIC)] != SUPERBLOCK_MAGIC:
        # Most likely the wrong place, not a damaged journal: a usage error (2).
        raise LocalError("no daozhang journal superblock at offset %d of %s (found %s, expected %s): "
                         "check --offset" % (offset, path, head[:8].hex(), SUPERBLOCK_MAGIC.hex()))
    # A superblock with our magic that fails its checks is damage: JournalCorrupt (1).
    geometry = decode_superblock(head)
    return geometry.segment_size, geometry.segment_count


class ImageSource:
    """The journal inside an image file or block device, read-only."""

    kind = "image"

    def __init__(self, path, offset=0, geometry=None, chunk=1024 * 1024):
        self.path = path
        self.offset = offset
        self.chunk = chunk
        if geometry is None:
            geometry = read_image_geometry(path, offset)
        self.segment_size, self.segment_count = geometry
        self.size = SUPERBLOCK_SIZE + self.segment_size * self.segment_count
        self.device_id = None
        self._fd = os.open(path, os.O_RDONLY)
        end = os.lseek(self._fd, 0, os.SEEK_END)  # st_size is 0 on a block device
        if end < offset + self.size:
            os.close(self._fd)
            raise LocalError("%s: %d bytes from offset %d, the journal needs %d"
                             % (path, max(0, end - offset), offset, self.size))

    def read(self, offset, length):
        data = os.pread(self._fd, length, self.offset + offset)
        if len(data) != length:
            raise OSError("short read from %s at %d" % (self.path, self.offset + offset))
        return data

    def segment(self, index, offset, length):
        base = SUPERBLOCK_SIZE + index * self.segment_size
        sha = _sha256_range(self.read, base, self.segment_size)
        return self.read(base + offset, min(length, self.segment_size - offset)), sha

    def extras(self):
        return {}

    def close(self):
        os.close(self._fd)


class PortSource:
    """The journal behind the USB service port (an authenticated ServiceClient)."""

    kind = "port"

    def __init__(self, client, info, chunk=None):
        self.client = client
        self.info = info
        try:
            self.segment_size = int(info["segment_size"])
            self.segment_count = int(info["segment_count"])
            self.size = int(info["journal_size"])
            self.device_id = str(info["device_id"])
            max_chunk = int(info["max_chunk"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RemoteError("device info lacks the journal geometry (%s)" % exc)
        if self.size != SUPERBLOCK_SIZE + self.segment_size * self.segment_count:
            raise RemoteError("device info: journal_size %d != 4096 + %d x %d"
                              % (self.size, self.segment_count, self.segment_size))
        self.chunk = min(chunk or DEFAULT_CHUNK, max_chunk)

    def read(self, offset, length):
        parts = []
        while length > 0:
            data = self.client.read(offset, min(length, self.chunk))
            if not data:
                raise RemoteError("device returned no bytes at %d" % offset)
            parts.append(data)
            offset += len(data)
            length -= len(data)
        return b"".join(parts)

    def segment(self, index, offset, length):
        return self.client.segment(index, offset, min(length, self.chunk))

    def extras(self):
        return {"info.json": self.info, "alerts.json": {"alerts": self.client.alerts()},
                "health.json": self.client.health()}

    def close(self):
        try:
            self.client.close()  # drop the session so the next person must authenticate
        except DaozhangError:
            pass  # the link is already gone; the device's idle timeout drops it
        finally:
            self.client.transport.close()


def _sha256_range(read, base, size, block=1024 * 1024):
    digest = hashlib.sha256()
    done = 0
    while done < size:
        n = min(block, size - done)
        digest.update(read(base + done, n))
        done += n
    return digest.digest()


class PullResult:
    def __init__(self, path, size):
        self.path = path
        self.size = size
        self.pulled_bytes = 0
        self.skipped_segments = 0
        self.pulled_segments = 0
        self.resumed = False
        self.retried_segments = 0

    def as_dict(self):
        return {"journal": self.path, "size": self.size, "pulled_bytes": self.pulled_bytes,
                "pulled_segments": self.pulled_segments, "skipped_segments": self.skipped_segments,
                "resumed": self.resumed, "retried_segments": self.retried_segments}


class _State:
    """DIR/pull-state.json, replaced atomically (write, fsync, rename)."""

    def __init__(self, out_dir):
        self.path = os.path.join(out_dir, STATE_FILE)
        self.data = None
        try:
            with open(self.path) as f:
                self.data = json.load(f)
        except FileNotFoundError:
            pass
        except (ValueError, OSError):
            self.data = None  # unreadable state: start over, the journal hashes will tell

    def matches(self, source):
        d = self.data
        return (isinstance(d, dict) and d.get("version") == STATE_VERSION
                and d.get("segment_size") == source.segment_size
                and d.get("segment_count") == source.segment_count
                and isinstance(d.get("segments"), dict))

    def start(self, source):
        self.data = {"version": STATE_VERSION, "device_id": source.device_id,
                     "segment_size": source.segment_size, "segment_count": source.segment_count,
                     "journal_size": source.size, "segments": {}, "partial": None}

    def save(self):
        atomic_write(self.path, json.dumps(self.data, sort_keys=True), durable=True)


def pull_journal(source, out_dir, progress=None):
    """Copy the journal from `source` into out_dir/journal.bin; a PullResult."""
    os.makedirs(out_dir, exist_ok=True)
    journal_path = os.path.join(out_dir, JOURNAL_FILE)
    state = _State(out_dir)
    result = PullResult(journal_path, source.size)
    if state.matches(source):
        result.resumed = True
        if source.device_id is not None:
            state.data["device_id"] = source.device_id
    else:
        state.start(source)
    fd = os.open(journal_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, source.size)
        done = 0

        def report(n):
            nonlocal done
            done += n
            if progress is not None:
                progress(done, source.size)

        superblock = source.read(0, SUPERBLOCK_SIZE)
        os.pwrite(fd, superblock, 0)
        result.pulled_bytes += len(superblock)
        report(len(superblock))
        for index in range(source.segment_count):
            _pull_segment(source, fd, index, state, result, report)
        os.fsync(fd)
    finally:
        os.close(fd)
    for name, value in source.extras().items():
        write_json(os.path.join(out_dir, name), value)
    return result


def _pull_segment(source, fd, index, state, result, report):
    size = source.segment_size
    base = SUPERBLOCK_SIZE + index * size
    key = str(index)
    have = state.data["segments"].get(key)
    partial = state.data.get("partial")
    if have is not None:
        _, device_sha = source.segment(index, 0, 0)
        local_sha = _sha256_range(lambda off, n: os.pread(fd, n, off), base, size)
        if device_sha.hex() == have and local_sha.hex() == have:
            result.skipped_segments += 1
            report(size)
            return
        del state.data["segments"][key]
    offset = 0
    sha = None
    if isinstance(partial, dict) and partial.get("index") == index:
        offset = int(partial.get("offset", 0))
        sha = partial.get("sha256")
        report(offset)
    for attempt in range(_SEGMENT_ATTEMPTS):
        if attempt:
            result.retried_segments += 1
        while offset < size:
            data, chunk_sha = source.segment(index, offset, size - offset)
            if sha is not None and chunk_sha.hex() != sha:
                # The segment changed since we began (the agent appended): start it again.
                report(-offset)
                offset = 0
                sha = None
                continue
            sha = chunk_sha.hex()
            if not data:
                raise RemoteError("device returned no bytes of segment %d at %d" % (index, offset))
            os.pwrite(fd, data, base + offset)
            offset += len(data)
            result.pulled_bytes += len(data)
            report(len(data))
            state.data["partial"] = {"index": index, "offset": offset, "sha256": sha}
            state.save()
        os.fsync(fd)
        local = _sha256_range(lambda off, n: os.pread(fd, n, off), base, size).hex()
        if local == sha:
            state.data["segments"][key] = sha
            state.data["partial"] = None
            state.save()
            result.pulled_segments += 1
            return
        report(-offset)
        offset = 0
        sha = None
    raise SegmentKeepsChanging("segment %d changed during each of %d pulls; try again when the "
                               "terminal is idle" % (index, _SEGMENT_ATTEMPTS))


def write_json(path, value):
    atomic_write(path, json.dumps(value, sort_keys=True, indent=2, default=_json_default) + "\n",
                 durable=False)


def _json_default(value):
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    raise TypeError("cannot write %s as JSON" % type(value).__name__)


def verify_pulled_journal(path, pubkeys):
    """The independent verifier's report on the pulled journal."""
    return verify_journal(path, pubkeys)

