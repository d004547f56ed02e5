"""Helpers to build journals in memory for tests of the writer."""

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daozhang.agent.core.journal import layout, record
from daozhang.signing import Ed25519Signer

JOURNAL_ID = bytes(range(16))


def make_signer(seed=7):
    return Ed25519Signer(Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


def fresh_image(segment_size=8192, segment_count=4, device_id="test-pos", journal_id=JOURNAL_ID, sector_size=512):
    geo = layout.Geometry(segment_size, segment_count, journal_id, device_id, 1_764_115_200_000, sector_size)
    return geo.encode() + bytes(geo.file_size - layout.SUPERBLOCK_SIZE)


def read_records(storage, ring):
    """Every record up to the ring's tail, oldest segment first."""
    geo = ring.geo
    order = sorted((s, i) for i, s in enumerate(ring.first_seqs) if s is not None)
    out = []
    for first, index in order:
        base = geo.segment_offset(index)
        buf = storage.pread(base, geo.segment_size)
        off = layout.SEGMENT_HEADER_SIZE
        while off < len(buf):
            rec = record.decode_at(buf, off)
            if rec is None or rec.seq >= ring.next_seq:
                break
            out.append(rec)
            off += rec.size
    return out


def read_all(storage, ring):
    """(seq, hash) of every record up to the ring's tail, oldest segment first."""
    return [(rec.seq, rec.hash) for rec in read_records(storage, ring)]
