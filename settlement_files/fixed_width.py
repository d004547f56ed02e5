"""Fixed-width records counted in BYTES of the file's encoding.

UnionPay's ZM and ACOM files (SPEC §7.9.4) give each field a width in bytes of
GBK, one separator byte after each field, no header.  Decoding the line first
and slicing characters shifts every field after the first Chinese character,
so a record is sliced as bytes and each slice decoded on its own.  The writer
is the reader's inverse (tests round-trip any GBK text through both).
"""


def split_record(record, widths, separator, encoding):
    """bytes -> [field text], trailing spaces stripped.  A record may stop
    short inside its last fields (trailing blanks dropped by some systems),
    never inside a multi-byte character.  Raises ValueError naming the field."""
    fields = []
    at = 0
    for i, width in enumerate(widths):
        piece = record[at:at + width]
        try:
            fields.append(piece.decode(encoding).rstrip(" "))
        except UnicodeDecodeError:
            raise ValueError("field %d (bytes %d-%d) is not %s" % (i + 1, at, at + width - 1,
                                                                   encoding)) from None
        at += width + separator
    if len(record) > at - separator:
        raise ValueError("%d bytes, the layout has %d (a different layout?)"
                         % (len(record), at - separator))
    return fields


def join_record(fields, widths, separator, encoding, fill=b" "):
    """[field text] -> bytes; each field left-aligned and space-padded to its
    width in bytes.  Raises ValueError when a field does not fit."""
    out = []
    for i, (text, width) in enumerate(zip(fields, widths)):
        data = text.encode(encoding)
        if len(data) > width:
            raise ValueError("field %d: %d bytes do not fit in %d" % (i + 1, len(data), width))
        out.append(data + b" " * (width - len(data)))
    return (fill * separator).join(out)
