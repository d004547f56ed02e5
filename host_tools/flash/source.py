"""Open an OS image as one stream of bytes, whatever it was compressed with.

.img (raw), .gz (gzip), .xz (lzma), .zst (zstandard, the `zstandard` package);
the kind comes from the file's magic bytes, not its name, so a renamed file
still opens.  `size` is the uncompressed size where it is known without
decompressing (raw images), else None; `position()` is how far into the
*input file* the reader is, so a progress bar still moves on compressed
images (the fraction of the compressed file consumed).
"""

import gzip
import lzma
import os

from daozhang.host_tools.flash.errors import ImageError

_MAGIC = [(b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd")]


class ImageSource:
    """A readable image: `read(n)`, `size` (or None), `position()`, `input_size`."""

    def __init__(self, path):
        self.path = path
        try:
            self._raw = open(path, "rb")
        except OSError as exc:
            raise ImageError("--image %s: cannot read: %s" % (path, exc.strerror)) from None
        self.input_size = os.fstat(self._raw.fileno()).st_size
        head = self._raw.read(6)
        self._raw.seek(0)
        self.kind = "raw"
        for magic, kind in _MAGIC:
            if head.startswith(magic):
                self.kind = kind
        self.size = self.input_size if self.kind == "raw" else None
        if self.kind == "gzip":
            self._stream = gzip.GzipFile(fileobj=self._raw, mode="rb")
        elif self.kind == "xz":
            self._stream = lzma.LZMAFile(self._raw, "rb")
        elif self.kind == "zstd":
            import zstandard
            self._stream = zstandard.ZstdDecompressor().stream_reader(self._raw)
        else:
            self._stream = self._raw

    def read(self, n):
        """Up to n bytes (fewer only at the end); ImageError on a corrupt stream."""
        out = []
        want = n
        try:
            while want:
                chunk = self._stream.read(want)
                if not chunk:
                    break
                out.append(chunk)
                want -= len(chunk)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise ImageError("--image %s: corrupt %s stream: %s" % (self.path, self.kind, exc)) from None
        except Exception as exc:                     # zstandard.ZstdError
            if type(exc).__name__ == "ZstdError":
                raise ImageError("--image %s: corrupt zstd stream: %s" % (self.path, exc)) from None
            raise
        return b"".join(out)

    def read_into(self, buf):
        """Fill `buf` (a bytearray) as far as the image goes; the count.  A raw
        image reads straight into it (no 4 MiB allocation per block)."""
        if self.kind != "raw":
            data = self.read(len(buf))
            buf[:len(data)] = data
            return len(data)
        view = memoryview(buf)
        got = 0
        while got < len(buf):
            n = self._raw.readinto(view[got:])
            if not n:
                break
            got += n
        return got

    def skip(self, n):
        """Read past n bytes (seek on a raw image); returns how many were skipped."""
        if self.kind == "raw":
            here = self._raw.tell()
            end = min(here + n, self.input_size)
            self._raw.seek(end)
            return end - here
        skipped = 0
        while skipped < n:
            chunk = self.read(min(4 << 20, n - skipped))
            if not chunk:
                break
            skipped += len(chunk)
        return skipped

    def position(self):
        return self._raw.tell()

    def close(self):
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
