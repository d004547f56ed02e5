"""Bit-rot battery (SPEC 3.9): damage committed records, then open the journal.

Invariant, for single-bit flips, byte flips and 16-byte zeroed runs in
committed records of the head segment (its last commit and an earlier one),
of an older segment, and in the superblock: after the next open every
committed record's bytes are still present - in the journal or in the
quarantine file beside it - and the verifier reports the damage (never
"intact").  Where the damage is not the last commit's possible torn tail,
the open refuses with JournalDamaged naming segment, offset and sequence
range, and changes nothing.  Real files, real fsync; the CLI in a real
process for the issue's own scenario.
"""

import json
import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization

from daozhang.agent.core.errors import JournalDamaged
from daozhang.agent.core.journal import record
from daozhang.agent.journal_file import JournalFile, create_journal
from daozhang.signing import Ed25519Signer
from daozhang.agent.storage import read_quarantine
from daozhang.host_tools.verify.journal import verify_journal
from dztest import journal_forge as forge
from dztest.journal_samples import StepClock

KEY = forge.new_key()
SEGMENT = 8192


def build(path, count=40):
    """A journal with three segments or more in use: ({seq: (file offset, segment, type, frame)}, head, segments)."""
    create_journal(path, "rot-pos", size=4096 + 8 * SEGMENT, segment_size=SEGMENT, created_ms=1764100000000)
    with JournalFile.open(path, Ed25519Signer(KEY), clock=StepClock()) as journal:
        for i in range(count):
            journal.append(record.TYPE_TRANSACTION, forge.sample_txn(i))
        geo, ring = journal.geo, journal.ring
        head = ring.head_index
        segs = sorted((s, i) for i, s in enumerate(ring.first_seqs) if s is not None)
    assert len(segs) >= 3
    located = {}
    for first, index in segs:
        base = geo.segment_offset(index)
        with open(path, "rb") as f:
            f.seek(base)
            buf = f.read(SEGMENT)
        off = 96
        while True:
            rec = record.decode_at(buf, off)
            if rec is None:
                break
            located[rec.seq] = (base + off, index, rec.type, buf[off:off + rec.size])
            off += rec.size
    return located, head, segs


def targets(located, head, segs):
    """(name, file offset) of bytes inside committed sale records to damage."""
    sales = [(seq, v) for seq, v in sorted(located.items()) if v[2] == record.TYPE_TRANSACTION]
    head_sales = [(seq, v) for seq, v in sales if v[1] == head]
    older = [(seq, v) for seq, v in sales if v[1] == segs[0][1]]
    out = []
    for name, (seq, (offset, _, _, frame)) in (("head-last-commit", head_sales[-1]),
                                               ("head-earlier-commit", head_sales[0]),
                                               ("older-segment", older[len(older) // 2])):
        out += [(name, offset + 3), (name, offset + len(frame) // 2), (name, offset + len(frame) - 20)]
    out += [("superblock", 12), ("superblock", 40), ("superblock", 100)]
    return out


def damage(data, offset, how):
    data = bytearray(data)
    if how == "bit":
        data[offset] ^= 0x10
    elif how == "byte":
        data[offset] ^= 0xFF
    else:
        data[offset:offset + 16] = bytes(16)
    return bytes(data)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("rot") / "pristine.dzj")
    located, head, segs = build(path)
    with open(path, "rb") as f:
        return f.read(), located, head, segs


@pytest.mark.parametrize("how", ["bit", "byte", "zero16"])
def test_no_damage_is_laundered_and_no_committed_byte_lost(pristine, tmp_path, how):
    image, located, head, segs = pristine
    checked = 0
    for name, offset in targets(located, head, segs):
        damaged = damage(image, offset, how)
        if damaged == image:
            continue
        path = str(tmp_path / ("%s-%d.dzj" % (name, offset)))
        with open(path, "wb") as f:
            f.write(damaged)
        try:
            JournalFile.open(path, Ed25519Signer(KEY), clock=StepClock(1900000000000)).close()
            opened = True
        except JournalDamaged as exc:
            opened = False
            assert "offset" in str(exc) and "\n" not in str(exc)
            with open(path, "rb") as f:
                assert f.read() == damaged, "%s: a refused open changed the journal" % name
        if name in ("head-earlier-commit", "superblock"):
            assert not opened, "%s %s at %d: damage opened as if intact" % (how, name, offset)
        with open(path, "rb") as f:
            after = f.read()
        kept = [data for _, data, ok in read_quarantine(path + ".quarantine")] \
            if os.path.exists(path + ".quarantine") else []
        for seq, (off, _, _, frame) in located.items():
            if off <= offset < off + len(frame) or off < offset + 16 <= off + len(frame) and how == "zero16":
                continue    # the damaged record itself: its bytes are what they are, kept in place or aside
            present = after[off:off + len(frame)] == frame or any(frame in data for data in kept)
            assert present, "%s %s at %d: committed record %d lost (opened=%s)" % (how, name, offset, seq, opened)
        report = verify_journal(path, [forge.raw_public(KEY)], all_signatures=True)
        assert not report.ok and report.findings, "%s %s at %d: verified intact" % (how, name, offset)
        checked += 1
    assert checked >= 9


def _cli(*args, stdin=None):
    proc = subprocess.run([sys.executable, "-m", "daozhang"] + list(args), input=stdin, capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_the_issue_scenario_refuses_in_one_line_and_verify_names_it(tmp_path):
    """init, 50 appends, a bit flipped in the 5th sale, one more append:
    exit 2 with one line naming the damage; nothing changed; verify exits 1."""
    key = tmp_path / "dev.key"
    pub = tmp_path / "dev.pub"
    key.write_bytes(KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    pub.write_bytes(forge.pem_public(KEY))
    path = str(tmp_path / "j.dzj")
    rc, _, err = _cli("journal", "init", path, "--device-id", "pos-1", "--key", str(key), "--size", "1MiB")
    assert rc == 0, err
    lines = "".join(json.dumps(forge.sample_txn(i)) + "\n" for i in range(50))
    rc, out, err = _cli("journal", "append", path, "--key", str(key), stdin=lines)
    assert rc == 0 and len(out.splitlines()) == 50, err
    fifth = int(out.splitlines()[4].split()[0])
    with JournalFile.open(path, Ed25519Signer(KEY), boot=False) as journal:
        offset = next(rec.offset for rec in journal.records() if rec.seq == fifth)
    with open(path, "r+b") as f:
        f.seek(offset + 40)
        byte = f.read(1)
        f.seek(offset + 40)
        f.write(bytes([byte[0] ^ 0x01]))
    with open(path, "rb") as f:
        before = f.read()
    rc, out, err = _cli("journal", "append", path, "--key", str(key), stdin=json.dumps(forge.sample_txn(99)) + "\n")
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("daozhang: journal damaged in segment")
    assert "Traceback" not in err
    with open(path, "rb") as f:
        assert f.read() == before
    rc, out, err = _cli("journal", "verify", path, "--pubkey", str(pub))
    assert rc == 1 and "CrcMismatch" in out + err


def test_salvage_sets_the_range_aside_signed_and_verify_reports_it_forever(tmp_path):
    key = tmp_path / "dev.key"
    key.write_bytes(KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    path = str(tmp_path / "j.dzj")
    located, head, segs = build(path, count=44)
    # a sale in the head segment's second commit: damage followed by later commits
    victim = [(seq, v) for seq, v in sorted(located.items()) if v[1] == head and v[2] == record.TYPE_TRANSACTION][1]
    seq, (offset, _, _, frame) = victim
    with open(path, "r+b") as f:
        f.seek(offset + 30)
        f.write(b"\xff")
    newest = max(located)
    rc, out, err = _cli("journal", "salvage", path, "--key", str(key))
    assert rc == 0 and "set aside" in out, err
    kept = read_quarantine(path + ".quarantine")
    assert len(kept) == 1 and kept[0][2]
    for s, (off, index, _, fr) in located.items():
        if s >= seq - 2 and index == head and off >= offset:
            assert fr in kept[0][1] or s == seq
    with JournalFile.open(path, Ed25519Signer(KEY), clock=StepClock(1900000000000)) as journal:
        after = journal.append(record.TYPE_TRANSACTION, forge.sample_txn(500))
        salvaged = [rec for rec in journal.records() if rec.type == record.TYPE_SALVAGE]
    assert after.seq > newest                             # no sequence number reused
    (rec,) = salvaged
    assert rec.payload["lost_first"] <= seq <= rec.payload["lost_last"] == newest
    for _ in range(2):                                    # on every later run
        report = verify_journal(path, [forge.raw_public(KEY)], all_signatures=True)
        assert report.kinds() == ["Salvaged"], report.findings
    pub = tmp_path / "dev.pub"
    pub.write_bytes(forge.pem_public(KEY))
    rc, out, err = _cli("journal", "verify", path, "--pubkey", str(pub))
    assert rc == 1 and "Salvaged" in out + err


def test_backend_lists_the_records_the_salvaged_journal_no_longer_holds(tmp_path):
    """The backend stored every record as it was committed; after a salvage it
    names exactly the set-aside range (`daozhang backend lost`)."""
    from daozhang.backend.device_lost import records_not_held
    from daozhang.backend.store import open_store
    from daozhang.host_tools.verify.reader import iter_records
    key = tmp_path / "dev.key"
    key.write_bytes(KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    path = str(tmp_path / "j.dzj")
    located, head, _ = build(path, count=44)
    store = open_store(str(tmp_path / "backend.db"))
    store.add_device("rot-pos", forge.raw_public(KEY))
    rows = [{"seq": r.seq, "type": r.type, "hash": r.hash, "prev_hash": r.prev,
             "frame": located[r.seq][3], "payload": {}} for r in iter_records(path)]
    store.store_batch("rot-pos", rows)
    assert records_not_held(store, "rot-pos", path) == []
    victim = [v for _, v in sorted(located.items()) if v[1] == head and v[2] == record.TYPE_TRANSACTION][1]
    with open(path, "r+b") as f:
        f.seek(victim[0] + 30)
        f.write(b"\xff")
    rc, out, err = _cli("journal", "salvage", path, "--key", str(key))
    assert rc == 0, err
    (salvaged,) = [r for r in iter_records(path) if r.type == record.TYPE_SALVAGE]
    lost = records_not_held(store, "rot-pos", path)
    assert [r["seq"] for r in lost] == list(range(salvaged.payload["lost_first"], salvaged.payload["lost_last"] + 1))
    assert all(r["why"] == "missing" for r in lost)
    store.close()
