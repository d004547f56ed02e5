"""Anchors (SPEC 3.11): a signed checkpoint kept outside the journal.

`journal head` writes one; `journal verify --anchor` later proves the journal
still holds that checkpoint (else AnchorMismatch, TruncatedJournal or
Rollback).  An anchor is trusted input: if it does not parse or its own
signature fails, the technician gave a bad file (BadTrustInput, exit 2).
"""

from collections import namedtuple
from hashlib import sha256

import cbor2

from daozhang.host_tools.verify import reader
from daozhang.host_tools.verify.cbor import CborProblem, decode_canonical
from daozhang.host_tools.verify.errors import BadTrustInput
from daozhang.host_tools.verify.frames import FRAME_HEADER, FRAME_MAGIC, FRAME_OVERHEAD, frame_head, frame_ok
from daozhang.host_tools.verify.keys import ALG_ED25519, checkpoint_message, signature_valid

Anchor = namedtuple("Anchor", "journal_id dev seq frame hash head wall_ms boot_id mono_ms payload")


def make_anchor(journal_id, dev, seq, frame_with_crc):
    """The deterministic CBOR bytes of an anchor for one checkpoint frame."""
    return cbor2.dumps({"v": 1, "journal_id": bytes(journal_id), "dev": dev, "seq": seq,
                        "frame": bytes(frame_with_crc)}, canonical=True)


def parse_anchor(data):
    """An Anchor from its bytes; BadTrustInput if it is not one (SPEC 3.11)."""
    try:
        value = decode_canonical(bytes(data))
    except CborProblem as exc:
        raise BadTrustInput("anchor is not deterministic CBOR: %s" % exc) from None
    expected = {"v": int, "journal_id": bytes, "dev": str, "seq": int, "frame": bytes}
    if type(value) is not dict or set(value) != set(expected):
        raise BadTrustInput("anchor must be a map with keys %s" % ", ".join(sorted(expected)))
    for key, kind in expected.items():
        if type(value[key]) is not kind:
            raise BadTrustInput("anchor field %r is not a %s" % (key, kind.__name__))
    if value["v"] != 1:
        raise BadTrustInput("anchor version %d, expected 1" % value["v"])
    frame = value["frame"]
    if len(frame) < FRAME_OVERHEAD + 1 or frame[0:2] != FRAME_MAGIC:
        raise BadTrustInput("anchor frame is not a record frame")
    rtype, flags, n = frame_head(frame, 0)
    if len(frame) != FRAME_OVERHEAD + n:
        raise BadTrustInput("anchor frame length %d, its header says %d" % (len(frame), FRAME_OVERHEAD + n))
    if not frame_ok(frame, 0, len(frame)):
        raise BadTrustInput("anchor frame CRC does not match")
    if rtype != reader.TYPE_CHECKPOINT:
        raise BadTrustInput("anchor frame is a %s record, expected a checkpoint"
                            % reader.TYPE_NAMES.get(rtype, "type %d" % rtype))
    body, problem = reader.decode_body(rtype, frame[FRAME_HEADER:-4])
    if problem is not None:
        raise BadTrustInput("anchor checkpoint body: %s" % problem[1])
    seq, head, wall_ms, boot_id, mono_ms, payload = body
    if seq != value["seq"] or payload["dev"] != value["dev"]:
        raise BadTrustInput("anchor says seq %d dev %s, its checkpoint says seq %d dev %s"
                            % (value["seq"], value["dev"], seq, payload["dev"]))
    if payload["alg"] != ALG_ED25519:
        raise BadTrustInput("anchor checkpoint is unsigned (alg %d)" % payload["alg"])
    return Anchor(value["journal_id"], value["dev"], seq, frame, sha256(frame[:-4]).digest(), head,
                  wall_ms, boot_id, mono_ms, payload)


def check_anchor_signature(anchor, trusted):
    """SPEC 3.11: the anchor's own signature, with a key from `trusted` {kid: key}."""
    key = trusted.get(anchor.payload["kid"])
    if key is None:
        raise BadTrustInput("anchor is signed by key %s, which is not among the trusted keys"
                            % anchor.payload["kid"].hex())
    message = checkpoint_message(anchor.dev, anchor.seq, anchor.head, anchor.wall_ms, anchor.boot_id,
                                 anchor.mono_ms, anchor.payload)
    if not signature_valid(key, anchor.payload["sig"], message):
        raise BadTrustInput("anchor signature does not verify with key %s" % anchor.payload["kid"].hex())


def read_anchor(source):
    """An Anchor from a path or bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return parse_anchor(source)
    try:
        with open(source, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise BadTrustInput("cannot read anchor %s: %s" % (source, exc.strerror)) from None
    return parse_anchor(data)
