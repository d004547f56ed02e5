"""Read a bmaptool block map (.bmap, XML, format 1.x and 2.0).

Why hand-written: bmaptool's reader (Debian's bmap-tools, `bmaptools.BmapCopy`)
is not on PyPI and is welded to its own copier and progress output, so it
cannot feed our writer, our progress callback and our read-back check.  The
format is small: ImageSize, BlockSize, BlocksCount, MappedBlocksCount,
ChecksumType, the file's own checksum (computed with that field's text set to
all "0"), and <Range chksum="..."> FIRST-LAST </Range> entries.  The tests
read maps made by the real `bmaptool create`.

`load_bmap(path)` returns a BlockMap; every defect is an ImageError naming
the file and the field.
"""

import hashlib
import re
import xml.etree.ElementTree as ET

from daozhang.host_tools.flash.errors import ImageError

_HASHES = {"sha1": 40, "sha256": 64}


class BlockMap:
    """`ranges`: [(offset, length, checksum hex)], ordered and not overlapping."""

    def __init__(self, path, image_size, block_size, checksum_type, ranges):
        self.path = path
        self.image_size = image_size
        self.block_size = block_size
        self.checksum_type = checksum_type
        self.ranges = ranges

    @property
    def mapped_bytes(self):
        return sum(length for _, length, _ in self.ranges)

    def new_hash(self):
        return hashlib.new(self.checksum_type)


def _int(path, root, tag):
    node = root.find(tag)
    try:
        return int(node.text.strip())
    except (AttributeError, ValueError):
        raise ImageError("--bmap %s: <%s>: expected a number" % (path, tag)) from None


def _check_file_checksum(path, text, root, version_major):
    tag, kind = ("BmapFileChecksum", root.findtext("ChecksumType", "").strip()) \
        if version_major >= 2 else ("BmapFileSHA1", "sha1")
    node = root.find(tag)
    if node is None:
        return                                         # 1.0-1.3 maps carry none
    want = node.text.strip()
    zeroed = re.sub(r"(<%s>\s*)[0-9a-fA-F]+(\s*</%s>)" % (tag, tag),
                    lambda m: m.group(1) + "0" * len(want) + m.group(2), text, count=1)
    got = hashlib.new(kind, zeroed.encode("utf-8")).hexdigest()
    if got != want.lower():
        raise ImageError("--bmap %s: the map's own %s is %s, expected %s: the file was edited or "
                         "truncated; make it again with `bmaptool create`" % (path, tag, got, want))


def parse_bmap(text, path="<bmap>"):
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ImageError("--bmap %s: not XML: %s" % (path, exc)) from None
    if root.tag != "bmap":
        raise ImageError("--bmap %s: root element is <%s>, expected <bmap>" % (path, root.tag))
    version = root.get("version", "")
    if not re.fullmatch(r"[12]\.\d+", version):
        raise ImageError("--bmap %s: version %r unsupported (1.x or 2.x)" % (path, version))
    major = int(version.split(".")[0])
    _check_file_checksum(path, text, root, major)
    image_size = _int(path, root, "ImageSize")
    block_size = _int(path, root, "BlockSize")
    blocks = _int(path, root, "BlocksCount")
    if block_size <= 0 or blocks != (image_size + block_size - 1) // block_size:
        raise ImageError("--bmap %s: BlocksCount %d does not cover ImageSize %d in blocks of %d"
                         % (path, blocks, image_size, block_size))
    checksum_type = root.findtext("ChecksumType", "sha1" if major < 2 else "").strip()
    if checksum_type not in _HASHES:
        raise ImageError("--bmap %s: <ChecksumType> %r unsupported (sha1, sha256)" % (path, checksum_type))
    ranges = []
    end_prev = 0
    for node in root.iterfind("BlockMap/Range"):
        m = re.fullmatch(r"\s*(\d+)(?:\s*-\s*(\d+))?\s*", node.text or "")
        if not m:
            raise ImageError("--bmap %s: <Range> %r: expected FIRST-LAST" % (path, node.text))
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else first
        if first < end_prev or last < first or last >= blocks:
            raise ImageError("--bmap %s: <Range> %d-%d overlaps, is out of order or past block %d"
                             % (path, first, last, blocks - 1))
        chksum = (node.get("chksum") or node.get("sha1") or "").lower()
        if len(chksum) != _HASHES[checksum_type] or set(chksum) - set("0123456789abcdef"):
            raise ImageError("--bmap %s: <Range> %d-%d: missing or bad %s checksum"
                             % (path, first, last, checksum_type))
        offset = first * block_size
        length = min((last + 1) * block_size, image_size) - offset
        ranges.append((offset, length, chksum))
        end_prev = last + 1
    mapped = _int(path, root, "MappedBlocksCount")
    if mapped != sum((length + block_size - 1) // block_size for _, length, _ in ranges):
        raise ImageError("--bmap %s: MappedBlocksCount %d differs from the ranges listed" % (path, mapped))
    return BlockMap(path, image_size, block_size, checksum_type, ranges)


def load_bmap(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageError("--bmap %s: cannot read: %s" % (path, getattr(exc, "strerror", exc))) from None
    return parse_bmap(text, path)
