"""The firmware's journal under MicroPython 1.29, on a file, read back by CPython.

MicroPython writes a journal through firmware/micro_journal.py and
firmware/flash_storage.py (the portable ring, no threads, no signer: a
flagged outage), reopens it (recovery), and prints the file; CPython's
ring then opens the same bytes and finds every record.
"""

import binascii
import os

from daozhang.agent.core.journal import layout, ring_storage
from dztest.journal_kit import read_all
from dztest.micropython import run_micropython

FIRMWARE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "firmware")


def test_micropython_firmware_journal_is_readable_by_cpython():
    modules = ""
    for name in ("flash_storage.py", "micro_journal.py"):
        with open(os.path.join(FIRMWARE, name)) as f:
            modules += "open(%r, 'w').write(%r)\n" % ("/" + name, f.read())
    code = modules + r'''
import binascii
from daozhang.agent.core.journal import layout
import flash_storage, micro_journal
geo = layout.Geometry(8192, 4, b"J" * 16, "mcu-pos-1", 1764115200000)
flash_storage.create("/j.bin", geo.encode(), geo.file_size)
j = micro_journal.MicroJournal(flash_storage.FlashStorage("/j.bin"))
seqs = [j.append(1, {"kind": "sale", "n": n, "memo": "m" * 200}).seq for n in range(30)]
j.storage.close()
j2 = micro_journal.MicroJournal(flash_storage.FlashStorage("/j.bin"))
j2.storage.close()
print("SEQS", ",".join(str(s) for s in seqs))
print("IMAGE", binascii.hexlify(open("/j.bin", "rb").read()).decode())
'''
    out = run_micropython(code)
    seqs = [int(s) for s in out.split("SEQS ")[1].split()[0].split(",")]
    image = binascii.unhexlify(out.split("IMAGE ")[1].split()[0])
    storage = ring_storage.MemoryStorage(image)
    ring = ring_storage.open_ring(storage)
    found = dict(read_all(storage, ring))
    oldest = min(s for s in ring.first_seqs if s is not None)
    assert oldest == 0
    assert all(seq in found for seq in seqs)
    assert ring.outage                      # no signer on this board: flagged outage
    assert layout.decode_superblock(image[:4096]).device_id == "mcu-pos-1"
