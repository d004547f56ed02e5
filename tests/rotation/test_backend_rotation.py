"""The backend follows a device's key rotation (backend/device_keys.py,
key_registry.py, SPEC 3.8): only once the old key vouched for it, however
the records are split into messages and whichever worker sees them."""

import pytest

from daozhang.agent.core.journal import checkpoint, record
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.backend.service import Ingestor
from daozhang.backend.store import open_store

from dztest.pg import fresh_schema
from dztest.sync import DEVICE, Pair, make_journal, signer, txn_payload

OLD, NEW = 7, 21


def rotation_payload(new_signer):
    return {"alg": checkpoint.ALG_ED25519, "kid": new_signer.kid, "pub": new_signer.public_bytes}


@pytest.fixture(params=["sqlite", "postgres"])
def new_store(request, tmp_path):
    """A function opening the test's store: SQLite file or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield lambda: open_store(str(tmp_path / "backend.db"))
    else:
        with fresh_schema() as url:
            yield lambda: open_store(url)


@pytest.fixture
def rotated(tmp_path, new_store):
    """A journal: sales under the old key, a rotation vouched by the old key,
    sales under the new key (one commit each)."""
    path, journal = make_journal(tmp_path, seed=OLD)
    for i in range(5):
        journal.append(record.TYPE_TRANSACTION, txn_payload(i))
    rotation = journal.append(record.TYPE_KEY_ROTATION, rotation_payload(signer(NEW)))
    journal.signer = signer(NEW)
    for i in range(5, 10):
        journal.append(record.TYPE_TRANSACTION, txn_payload(i))
    store = new_store()
    pair = Pair(journal, store, device_seed=OLD)
    yield pair, rotation.seq
    journal.close()
    store.close()


def frames(pair):
    recs, _, _ = pair.reader.read(0, 1 << 20)
    return [r[2] for r in recs]


def send(ingestor, frame_list):
    return ingestor.receipts(DEVICE, msgs.encode_receipts(DEVICE, frame_list))


def registered_key(store):
    return bytes(store.device(DEVICE)["public_key"])


def findings(store):
    return [(f["kind"], f["seq"]) for f in store.findings()]


def test_one_message_with_the_rotation(rotated):
    pair, _ = rotated
    f = frames(pair)
    assert send(pair.ingestor, f) is not None
    assert findings(pair.store) == []
    assert registered_key(pair.store) == signer(NEW).public_bytes
    assert pair.store.head(DEVICE)[0] == len(f) - 1


@pytest.mark.parametrize("cut_after_rotation", [0, 1])
def test_split_between_the_rotation_and_its_checkpoint(rotated, cut_after_rotation):
    pair, seq = rotated
    f = frames(pair)
    # after the rotation record, or after its checkpoint (past any padding record, SPEC 3.9)
    checkpoint = next(i for i in range(seq + 1, len(f)) if f[i][2] == 8)
    cut = seq + 1 if cut_after_rotation == 0 else checkpoint + 1
    send(pair.ingestor, f[:cut])
    assert registered_key(pair.store) == (signer(OLD).public_bytes if cut_after_rotation == 0
                                         else signer(NEW).public_bytes)
    send(pair.ingestor, f[cut:])
    assert findings(pair.store) == []
    assert registered_key(pair.store) == signer(NEW).public_bytes


def test_a_restarted_worker_picks_up_the_pending_rotation(rotated):
    pair, seq = rotated
    f = frames(pair)
    send(pair.ingestor, f[:seq + 1])
    fresh = Ingestor(pair.store, pair.backend, clock=pair.clock)
    send(fresh, f[seq + 1:])
    assert findings(pair.store) == []
    assert registered_key(pair.store) == signer(NEW).public_bytes


def test_a_worker_that_missed_the_rotation_catches_up_from_the_store(rotated):
    pair, seq = rotated
    f = frames(pair)
    other = Ingestor(pair.store, pair.backend, clock=pair.clock)
    send(other, f[:1])                       # caches (old key, nothing pending)
    send(pair.ingestor, f[1:seq + 1])        # another worker stores the rotation record
    send(other, f[seq + 1:seq + 2])          # the vouching checkpoint, unaware of the rotation
    assert registered_key(pair.store) == signer(OLD).public_bytes
    send(other, f[seq + 2:])                 # new-key checkpoints: reload, adopt, accept
    assert findings(pair.store) == []
    assert registered_key(pair.store) == signer(NEW).public_bytes
    assert pair.store.head(DEVICE)[0] == len(f) - 1


def test_a_rotation_signed_only_by_the_new_key_is_wrong_key(tmp_path, new_store):
    path, journal = make_journal(tmp_path, seed=OLD)
    journal.append(record.TYPE_TRANSACTION, txn_payload(0))
    journal.signer = signer(NEW)               # the new key vouches for itself
    journal.append(record.TYPE_KEY_ROTATION, rotation_payload(signer(NEW)))
    store = new_store()
    pair = Pair(journal, store, device_seed=OLD)
    try:
        f = frames(pair)
        send(pair.ingestor, f)
        kinds = [k for k, _ in findings(store)]
        assert kinds == ["wrong_key"]
        assert registered_key(store) == signer(OLD).public_bytes
        assert store.head(DEVICE)[0] < len(f) - 1
    finally:
        journal.close()
        store.close()


def test_a_rotation_whose_kid_is_not_its_key_is_refused(tmp_path, new_store):
    path, journal = make_journal(tmp_path, seed=OLD)
    bad = rotation_payload(signer(NEW))
    bad["kid"] = signer(33).kid
    journal.append(record.TYPE_KEY_ROTATION, bad)
    store = new_store()
    pair = Pair(journal, store, device_seed=OLD)
    try:
        send(pair.ingestor, frames(pair))
        assert [k for k, _ in findings(store)] == ["bad_rotation"]
        assert registered_key(store) == signer(OLD).public_bytes
    finally:
        journal.close()
        store.close()
