"""The test vectors (tests/vectors/) are what the writer produces, on both interpreters.

CPython: regenerating the vectors changes nothing.  MicroPython 1.29: the
same scripted commits, through the same portable core, produce the same
journal image byte for byte and the same CBOR bytes.
"""

import os
import subprocess
import sys

from dztest.micropython import run_micropython

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "vectors")


def test_vectors_match_the_writer():
    proc = subprocess.run([sys.executable, os.path.join(VECTORS, "make_vectors.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


MP_REPLAY = r'''
import json, hashlib, binascii
from daozhang.agent.core import cbor
from daozhang.agent.core.journal import layout, ring_storage
from daozhang.agent.core.journal.ring import Clock

v = json.load(open("/vectors/journal.json"))
image_hex = open("/vectors/journal.img.hex").read().replace("\n", "")
expected_image = binascii.unhexlify(image_hex)

class ReplaySigner:
    # MicroPython has no Ed25519: replay the recorded signatures, but only
    # for exactly the recorded messages, so the signed bytes are checked.
    alg = 1
    def __init__(self, kid, messages, image):
        self.kid = kid
        self.messages = messages
        self.sigs = {}
        self.n = 0
    def sign(self, message):
        expected = self.messages[self.n]
        self.n += 1
        if binascii.hexlify(message).decode() != expected:
            raise ValueError("signed message %d differs" % (self.n - 1))
        return SIGS[self.n - 1]

# Signatures come from the checkpoints in the expected image, in order.
geo = layout.Geometry(v["segment_size"], v["segment_count"], binascii.unhexlify(v["journal_id"]),
                      v["device_id"], v["created_ms"])
SIGS = [binascii.unhexlify(s) for s in SIGNATURES]
storage = ring_storage.MemoryStorage(geo.encode() + bytes(geo.file_size - layout.SUPERBLOCK_SIZE))
ring = ring_storage.open_ring(storage)
signer = ReplaySigner(binascii.unhexlify(v["kid"]), v["signed_messages"], expected_image)
boot = binascii.unhexlify(v["boot_id"])
for step in v["commits"]:
    clock = Clock(step["wall_ms"], boot, step["mono_ms"])
    entries = [(e[0], e[1]) for e in step["entries"]]
    ring_storage.commit(storage, ring, entries, clock, signer if step["signed"] else None,
                  step.get("acked"), step.get("released"))
got = bytes(storage.data)
print("image", got == expected_image, hashlib.sha256(got).digest() == binascii.unhexlify(v["image_sha256"]))
c = json.load(open("/vectors/cbor.json"))
def conv(x):
    if isinstance(x, dict) and list(x.keys()) == ["$bytes"]:
        return binascii.unhexlify(x["$bytes"])
    if isinstance(x, dict):
        return dict((k, conv(val)) for k, val in x.items())
    if isinstance(x, list):
        return [conv(i) for i in x]
    return x
ok = all(binascii.hexlify(cbor.dumps(conv(case["value"]))).decode() == case["cbor"] for case in c["valid"])
bad = 0
for case in c["invalid"]:
    try:
        cbor.loads(binascii.unhexlify(case["cbor"]))
    except Exception as e:
        if type(e).__name__ == "DecodeError":
            bad += 1
print("cbor", ok, bad == len(c["invalid"]))
'''


def signatures_from_vectors():
    """Every checkpoint signature the writer produced, in order (from the CPython replay)."""
    sys.path.insert(0, VECTORS)
    try:
        import make_vectors
    finally:
        sys.path.pop(0)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.from_private_bytes(make_vectors.KEY_SEED)
    vectors, _ = make_vectors.build()
    return [key.sign(bytes.fromhex(m)).hex() for m in vectors["signed_messages"]]


def test_micropython_reproduces_vectors_byte_for_byte():
    sigs = signatures_from_vectors()
    out = run_micropython("SIGNATURES = %r\n" % sigs + MP_REPLAY)
    assert "image True True" in out, out
    assert "cbor True True" in out, out
