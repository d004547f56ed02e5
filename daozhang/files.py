"""Replace a file atomically: the one way every daozhang process writes a
whole file (status and display files, anchors, ledgers, the CRL, a pull's
state, a fresh journal, ...).

`atomic_write(path, data, durable=...)` writes `path + ".tmp"` and renames
it over `path`, so a reader sees the old bytes or the new ones, never a
torn mix.  `durable=True` also fsyncs the file before the rename and the
directory after it, so the new bytes survive a power cut once the call
returns; `durable=False` is for files that are rewritten every few seconds
and worth nothing after a reboot (a status line, a display, a test clock).

Neutral: the agent's storage adapter, the backend, the host tools and the
CLI import it; agent/core does not (the core does no I/O).
"""

import os

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def atomic_write(path, data, durable=True, mode=0o644):
    """Replace `path` with `data`: bytes, text (written as UTF-8) or an
    iterable of bytes chunks (a large file streamed without holding it).
    On failure the temporary file is removed and `path` is unchanged;
    the OSError propagates for the caller to name in its own terms."""
    path = os.fspath(path)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _CLOEXEC, mode)
    try:
        try:
            for chunk in _chunks(data):
                _write_all(fd, chunk)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    if durable:
        fsync_directory(path)


def fsync_directory(path):
    """Make a rename or a new file under `path`'s directory durable."""
    dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | _CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def fsync_file(path):
    """Flush a file someone else wrote (e.g. a key a library generated)."""
    fd = os.open(path, os.O_RDONLY | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _chunks(data):
    if isinstance(data, str):
        return (data.encode("utf-8"),)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return (data,)
    return data


def _write_all(fd, chunk):
    view = memoryview(chunk)
    while view:
        view = view[os.write(fd, view):]


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass
