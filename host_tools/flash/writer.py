"""Write an OS image to a card (block device) or a file, then prove it landed.

Two steps, like rpi-imager and bmaptool:

  write_image(source, target, bmap=None, progress_callback=None) -> WriteResult
      streams the image in 4 MiB writes (all of it, or only the block map's
      ranges, each checked against the map's hash as it is read), then
      fsyncs.  A regular-file target is sized to the image.
  verify_target(target, result, progress_callback=None)
      drops the target's cached pages (posix_fadvise DONTNEED after the
      fsync) so the read-back comes from the medium, re-reads what was
      written and compares hashes; VerifyFailed names the first range that
      differs, with its offset.

The CLI calls both; tests call them apart so that they can change a byte on
the "card" in between.
"""

import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor

from daozhang.host_tools.flash.errors import ImageError, VerifyFailed, WriteError

CHUNK = 4 << 20


class WriteResult:
    """What was written: `ranges` [(offset, length, hexdigest)], the hash type,
    bytes written and the image's size."""

    def __init__(self, target, ranges, hash_name, written, image_size, source_path=None):
        self.target = target
        self.source_path = source_path        # a raw image: the read-back compares with it
        self.ranges = ranges
        self.hash_name = hash_name
        self.written = written
        self.image_size = image_size


def open_target(path):
    """O_EXCL on a block device: Linux refuses it while mounted (a second guard)."""
    try:
        st = os.stat(path)
        flags = os.O_WRONLY | (os.O_EXCL if stat.S_ISBLK(st.st_mode) else 0)
    except FileNotFoundError:
        flags = os.O_WRONLY | os.O_CREAT
    try:
        return os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        raise WriteError("--target %s: cannot open for writing: %s" % (path, exc.strerror)) from None


def _pwrite_all(fd, data, offset, path):
    view = memoryview(data)
    while view:
        try:
            n = os.pwrite(fd, view, offset)
        except OSError as exc:
            raise WriteError("--target %s: write at byte %d failed: %s" % (path, offset, exc.strerror)) from None
        if n <= 0:
            raise WriteError("--target %s: write at byte %d wrote nothing (card full or removed?)"
                             % (path, offset))
        view = view[n:]
        offset += n


def _report(progress_callback, source, done, total):
    if progress_callback is None:
        return
    if total is None:                               # compressed, no map: by the input consumed
        progress_callback(source.position(), source.input_size)
    else:
        progress_callback(done, total)


def _finish(fd, path, size_to):
    try:
        if size_to is not None and stat.S_ISREG(os.fstat(fd).st_mode) and os.fstat(fd).st_size < size_to:
            os.ftruncate(fd, size_to)
        os.fsync(fd)
    except OSError as exc:
        raise WriteError("--target %s: fsync failed: %s (the card may be faulty or removed)"
                         % (path, exc.strerror)) from None
    finally:
        os.close(fd)


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _write_all(source, fd, path, progress_callback, hasher):
    # One range per 4 MiB chunk, so a failed read-back names where.  A raw
    # image is not hashed here: the read-back compares the card with the
    # image file itself, byte for byte (hashing in line halved the write
    # rate on a busy 2-core machine, bench/flash.py).  A compressed image
    # cannot be re-read cheaply, so its chunks are hashed now, on a worker
    # thread while this one writes.
    ranges = []
    offset = 0
    buf = bytearray(CHUNK)                       # one buffer, reused: dd does the same
    while True:
        n = source.read_into(buf)
        if not n:
            break
        chunk = memoryview(buf)[:n]
        digest = hasher.submit(_sha256, chunk) if source.kind != "raw" else None
        _pwrite_all(fd, chunk, offset, path)
        ranges.append([offset, n, digest.result() if digest else None])
        offset += n
        _report(progress_callback, source, offset, source.size)
    return ranges, "sha256", offset, offset


def _hash_all(hash_name, chunks):
    h = hashlib.new(hash_name)
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def _write_mapped(source, fd, path, bmap, progress_callback, hasher):
    at = 0
    done = 0
    total = bmap.mapped_bytes
    for offset, length, want in bmap.ranges:
        at += source.skip(offset - at)               # unmapped: read past, write nothing
        chunks = []
        left = length
        while left:
            chunk = source.read(min(CHUNK, left))
            if not chunk:
                raise ImageError("--image %s ends at byte %d, inside the block map's range at %d+%d "
                                 "(wrong --bmap for this image?)" % (source.path, at, offset, length))
            chunks.append(chunk)
            _pwrite_all(fd, chunk, at, path)
            at += len(chunk)
            left -= len(chunk)
            done += len(chunk)
            _report(progress_callback, source, done, total)
        got = hasher.submit(_hash_all, bmap.checksum_type, chunks).result()
        if got != want:
            raise ImageError("--image %s: bytes %d..%d hash %s, the block map says %s (wrong --bmap, "
                             "or a corrupt image: download it again)"
                             % (source.path, offset, offset + length, got, want))
    return list(bmap.ranges), bmap.checksum_type, done, bmap.image_size


def write_image(source, target, bmap=None, progress_callback=None):
    """Write `source` (an ImageSource) to `target`; fsync; return a WriteResult."""
    if bmap is not None and source.size is not None and source.size != bmap.image_size:
        raise ImageError("--bmap %s is for an image of %d bytes, --image %s has %d"
                         % (bmap.path, bmap.image_size, source.path, source.size))
    fd = open_target(target)
    try:
        with ThreadPoolExecutor(1) as hasher:
            if bmap is None:
                ranges, hash_name, written, size = _write_all(source, fd, target, progress_callback, hasher)
            else:
                ranges, hash_name, written, size = _write_mapped(source, fd, target, bmap,
                                                                 progress_callback, hasher)
    except BaseException:
        os.close(fd)
        raise
    _finish(fd, target, size)
    raw = source.path if bmap is None and source.kind == "raw" else None
    return WriteResult(target, [list(r) for r in ranges], hash_name, written, size, raw)


def drop_cache(path):
    """Ask the kernel to forget the target's cached pages, so reads hit the medium."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def hash_range(f, offset, length, hash_name, progress=None):
    h = hashlib.new(hash_name)
    f.seek(offset)
    left = length
    while left:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            break
        h.update(chunk)
        left -= len(chunk)
        if progress is not None:
            progress(len(chunk))
    return h.hexdigest(), length - left


def _compare_with_image(f, image, offset, length, target, image_path):
    """Card bytes == image bytes at offset, or VerifyFailed; returns the card chunk."""
    f.seek(offset)
    image.seek(offset)
    card = f.read(length)
    if len(card) != length:
        raise VerifyFailed("--target %s: read back %d of %d bytes at %d: the target is smaller than the "
                           "image" % (target, len(card), length, offset), offset)
    if card != image.read(length):
        raise VerifyFailed("--target %s: bytes %d..%d read back differ from --image %s: the card did not "
                           "keep what was written; flash again, and replace the card if it fails twice"
                           % (target, offset, offset + length, image_path), offset)
    return card


def verify_target(target, result, progress_callback=None):
    """Read back every range written and compare; VerifyFailed on the first difference.

    A raw image's ranges are compared with the image file byte for byte and
    their hashes recorded (for `--check`); the others against their hashes."""
    try:
        drop_cache(target)
        f = open(target, "rb")
        image = open(result.source_path, "rb") if result.source_path else None
    except OSError as exc:
        raise WriteError("--target %s: cannot read back: %s" % (target, exc.strerror)) from None
    done = [0]
    total = sum(length for _, length, _ in result.ranges)

    def tick(n):
        done[0] += n
        if progress_callback is not None:
            progress_callback(done[0], total)
    with f:
        for entry in result.ranges:
            offset, length, want = entry
            if want is None:
                card = _compare_with_image(f, image, offset, length, target, result.source_path)
                entry[2] = _sha256(card)
                tick(length)
                continue
            got, read = hash_range(f, offset, length, result.hash_name, tick)
            if read != length:
                raise VerifyFailed("--target %s: read back %d of %d bytes at %d: the target is smaller "
                                   "than the image" % (target, read, length, offset), offset)
            if got != want:
                raise VerifyFailed("--target %s: bytes %d..%d read back with %s %s, wrote %s: the card "
                                   "did not keep what was written; flash again, and replace the card if "
                                   "it fails twice" % (target, offset, offset + length, result.hash_name,
                                                       got[:16], want[:16]), offset)
    if image is not None:
        image.close()
    return total
