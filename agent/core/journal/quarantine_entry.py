"""One quarantine entry (SPEC 3.15): the bytes recovery set aside, with where
they were and their SHA-256, so nothing it cuts is ever lost.

Pure bytes; the Linux adapter (agent/storage.py) and the board storages
(firmware/quarantine.py, firmware/flash_storage.py) append entries to their
own files.  Portable: CPython and MicroPython.
"""

import hashlib

MAGIC = b"DZQ1"
HEADER_SIZE = 48               # magic 4, journal offset 8, length 4, SHA-256 32


def encode(offset, data):
    """magic, journal offset (8, big-endian), length (4), SHA-256 of the bytes, the bytes."""
    return (MAGIC + offset.to_bytes(8, "big") + len(data).to_bytes(4, "big")
            + hashlib.sha256(data).digest() + bytes(data))
