"""Files inside a FAT partition of a card or image, through pyfatfs (no mount).

`FatPartition(target, offset)` opens the partition that starts `offset` bytes
into `target`; paths are absolute inside the partition ("/daozhang/x").  FAT
has no modes or owners: the first-boot step gives files theirs.
"""

import hashlib
import warnings

from daozhang.host_tools.flash.errors import ImageError, WriteError


class FatPartition:
    def __init__(self, target, offset):
        from pyfatfs.PyFatFS import PyFatFS
        self.target = target
        try:
            with warnings.catch_warnings():
                # pyfatfs warns when a small FAT32 could also be FAT16; mkfs.fat -F 32 made it FAT32.
                warnings.simplefilter("ignore", UserWarning)
                self.fs = PyFatFS(target, offset=offset)
        except Exception as exc:                    # pyfatfs raises bare PyFATException / OSError
            raise ImageError("%s: no FAT file system at byte %d: %s" % (target, offset, exc)) from None

    def write(self, path, data):
        try:
            parent = path.rsplit("/", 1)[0]
            if parent:
                self.fs.makedirs(parent, recreate=True)
            self.fs.writebytes(path, data)
        except Exception as exc:
            raise WriteError("%s: cannot write %s into the boot partition: %s (full?)"
                             % (self.target, path, exc)) from None

    def read(self, path):
        try:
            return self.fs.readbytes(path)
        except Exception:
            return None

    def exists(self, path):
        return self.fs.exists(path)

    def remove_tree(self, path):
        if self.fs.exists(path):
            self.fs.removetree(path)

    def walk_hashes(self, skip=()):
        """{path: sha256 hex} of every file, except under the `skip` prefixes."""
        out = {}
        for path in self.fs.walk.files("/"):
            if not any(path == s or path.startswith(s + "/") for s in skip):
                out[path] = hashlib.sha256(self.fs.readbytes(path)).hexdigest()
        return out

    def close(self):
        self.fs.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
