"""Fixed layouts of the journal file: superblock and segment headers (SPEC 3.1-3.2).

Portable: CPython and MicroPython.
"""

import binascii
import struct

from daozhang.agent.core import device_id as device_id_rule
from daozhang.agent.core.errors import JournalCorrupt, LocalError

SUPERBLOCK_SIZE = 4096
SUPERBLOCK_MAGIC = b"DZJRNL01"
FORMAT_VERSION = 2
FORMAT_VERSIONS = (1, 2)        # 1: no declared sector, commits packed; 2: sector-aligned commits
SECTOR_SIZES = (512, 1024, 2048, 4096)
DEFAULT_SECTOR_SIZE = 512
SEGMENT_MAGIC = b"DZSG"
SEGMENT_HEADER_SIZE = 96
JOURNAL_ID_SIZE = 16
MAX_DEVICE_ID = device_id_rule.MAX_LENGTH
MIN_SEGMENT_SIZE = 8192
MAX_SEGMENT_SIZE = 64 * 1024 * 1024
MAX_SEGMENTS = 65536


def _crc(data):
    return binascii.crc32(data) & 0xFFFFFFFF


def check_device_id(device_id):
    return device_id_rule.check(device_id)


def check_geometry(segment_size, segment_count):
    if segment_size % 4096 or not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise LocalError("segment size %d: must be a multiple of 4096 between %d and %d"
                         % (segment_size, MIN_SEGMENT_SIZE, MAX_SEGMENT_SIZE))
    if not 2 <= segment_count <= MAX_SEGMENTS:
        raise LocalError("segment count %d: must be between 2 and %d" % (segment_count, MAX_SEGMENTS))


def check_sector_size(sector_size):
    if sector_size not in SECTOR_SIZES:
        raise LocalError("sector size %r: must be one of %s" % (sector_size, ", ".join(str(s) for s in SECTOR_SIZES)))
    return sector_size


class Geometry:
    """What the superblock says; immutable for the life of a journal.

    `sector_size` is the unit the storage may tear (SPEC 3.1, version 2):
    every commit ends on a multiple of it, so a torn write of the next
    commit never touches a sector of this one.  A version 1 journal declares
    none; its writer then packs commits (`align` 1), as version 1 did.
    """

    __slots__ = ("segment_size", "segment_count", "journal_id", "device_id", "created_ms",
                 "sector_size", "version")

    def __init__(self, segment_size, segment_count, journal_id, device_id, created_ms,
                 sector_size=DEFAULT_SECTOR_SIZE, version=FORMAT_VERSION):
        check_geometry(segment_size, segment_count)
        check_device_id(device_id)
        if len(journal_id) != JOURNAL_ID_SIZE:
            raise LocalError("journal id must be 16 bytes")
        if version not in FORMAT_VERSIONS:
            raise LocalError("format version %r: this writer knows %s" % (version, FORMAT_VERSIONS))
        if version >= 2:
            check_sector_size(sector_size)
        else:
            sector_size = None
        self.segment_size = segment_size
        self.segment_count = segment_count
        self.journal_id = journal_id
        self.device_id = device_id
        self.created_ms = created_ms
        self.sector_size = sector_size
        self.version = version

    @property
    def align(self):
        """Commits end on a multiple of this many bytes (1: packed, version 1)."""
        return self.sector_size or 1

    @property
    def file_size(self):
        return SUPERBLOCK_SIZE + self.segment_size * self.segment_count

    def segment_offset(self, index):
        return SUPERBLOCK_SIZE + index * self.segment_size

    def encode(self):
        dev = self.device_id.encode("utf-8")
        head = (SUPERBLOCK_MAGIC + struct.pack(">HHII", self.version, self.sector_size or 0, self.segment_size, self.segment_count)
                + self.journal_id + bytes((len(dev),)) + dev + b"\x00" * (MAX_DEVICE_ID - len(dev))
                + struct.pack(">Q", self.created_ms))
        head += struct.pack(">I", _crc(head))
        return head + b"\x00" * (SUPERBLOCK_SIZE - len(head))


def geometry_for(size, segment_size=None):
    """(segment_size, segment_count) for a journal of about `size` bytes.

    Default segments: size/64 rounded down to 4 KiB, between 64 KiB and 1 MiB,
    so a 64 MiB journal has 64 segments of 1 MiB: recovery reads one segment.
    """
    if segment_size is None:
        segment_size = (size // 64) // 4096 * 4096
        segment_size = max(64 * 1024, min(1024 * 1024, segment_size))
    count = (size - SUPERBLOCK_SIZE) // segment_size if size > SUPERBLOCK_SIZE else 0
    check_geometry(segment_size, count)
    return segment_size, count


def decode_superblock(data):
    """Geometry from the first 4096 bytes, or JournalCorrupt naming the fault."""
    if len(data) < SUPERBLOCK_SIZE:
        raise JournalCorrupt("superblock: file shorter than 4096 bytes")
    if data[:8] != SUPERBLOCK_MAGIC:
        raise JournalCorrupt("superblock: bad magic (not a daozhang journal)")
    version, sector, seg_size, seg_count = struct.unpack_from(">HHII", data, 8)
    if version not in FORMAT_VERSIONS:
        raise JournalCorrupt("superblock: format version %d, this reader knows 1 and 2" % version)
    (crc,) = struct.unpack_from(">I", data, 109)
    if crc != _crc(data[:109]):
        raise JournalCorrupt("superblock: CRC mismatch")
    if (version == 1 and sector) or any(data[113:SUPERBLOCK_SIZE]):
        raise JournalCorrupt("superblock: non-zero reserved bytes")
    if version >= 2 and sector not in SECTOR_SIZES:
        raise JournalCorrupt("superblock: sector size %d, expected one of %s" % (sector, SECTOR_SIZES))
    dev_len = data[36]
    dev_raw = bytes(data[37:37 + MAX_DEVICE_ID])
    if not 1 <= dev_len <= MAX_DEVICE_ID or any(dev_raw[dev_len:]):
        raise JournalCorrupt("superblock: bad device id field")
    try:
        device_id = str(dev_raw[:dev_len], "utf-8")
        (created_ms,) = struct.unpack_from(">Q", data, 101)
        return Geometry(seg_size, seg_count, bytes(data[20:36]), device_id, created_ms,
                        sector or DEFAULT_SECTOR_SIZE, version)
    except (LocalError, UnicodeError, ValueError) as exc:
        raise JournalCorrupt("superblock: %s" % exc)


def encode_segment_header(index, first_seq, prev_hash, journal_id):
    head = SEGMENT_MAGIC + struct.pack(">IQ", index, first_seq) + prev_hash + journal_id
    head += struct.pack(">I", _crc(head))
    return head + b"\x00" * (SEGMENT_HEADER_SIZE - len(head))


def decode_segment_header(data, index, journal_id):
    """(first_seq, prev_hash) if the header is valid for this slot, else None (free)."""
    if len(data) < SEGMENT_HEADER_SIZE or data[:4] != SEGMENT_MAGIC:
        return None
    (crc,) = struct.unpack_from(">I", data, 64)
    if crc != _crc(data[:64]) or any(data[68:SEGMENT_HEADER_SIZE]):
        return None
    own_index, first_seq = struct.unpack_from(">IQ", data, 4)
    if own_index != index or bytes(data[48:64]) != journal_id:
        return None
    return first_seq, bytes(data[16:48])
