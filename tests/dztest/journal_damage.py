"""Damaging a stopped agent's journal the way bit rot would (tests of SPEC 3.9)."""

from daozhang.agent.core.journal import layout, record


def segments_in_use(path):
    """(file bytes, geometry, [(first_seq, segment index)] oldest first)."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    geo = layout.decode_superblock(bytes(data[:4096]))
    heads = [(layout.decode_segment_header(bytes(data[geo.segment_offset(i):geo.segment_offset(i) + 96]), i,
                                           geo.journal_id), i) for i in range(geo.segment_count)]
    return data, geo, sorted((h[0], i) for h, i in heads if h is not None)


def damage_a_committed_sale(path):
    """Flip a byte in the first sale of the newest segment that a later commit follows."""
    data, geo, used = segments_in_use(path)
    base = geo.segment_offset(used[-1][1])
    buf = bytes(data[base:base + geo.segment_size])
    off, sales = 96, []
    while True:
        rec = record.decode_at(buf, off)
        if rec is None:
            break
        if rec.type == record.TYPE_TRANSACTION:
            sales.append(base + off)
        off += rec.size
    assert len(sales) >= 2
    data[sales[0] + 30] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)
    return bytes(data)
