"""The message vectors (tests/vectors/messages.json) against the readers that
receive them, on CPython with the real Ed25519: the receipt verifier
(`daozhang receipt verify`), the agent's down-message check, the backend's
alert intake (SQLite), `agent status` (SPEC 6.8) and the host verifier on
the salvaged journal.
The portable side (both interpreters) is tests/portable/test_message_vectors.py;
make_vectors.py --check (tests/journal/test_vectors.py) proves the file is
what the code writes today."""

import json
import os
import sys

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from daozhang.agent import receipt as receipt_verifier
from daozhang.agent.core import cbor
from daozhang.agent.core.journal import checkpoint
from daozhang.agent.core.sync import settlement_ack
from daozhang.agent.sync_status import journal_sync_view
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.agent.core.sync.sync_core import DOWN_KINDS as KINDS   # the down kinds the agent accepts
from daozhang.backend.service import Ingestor
from daozhang.backend.store import open_store
from daozhang.host_tools.verify.journal import check_journal
from daozhang.host_tools.verify.errors import Salvaged

VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vectors")


def load(name):
    with open(os.path.join(VECTORS, name), encoding="utf-8") as f:
        return json.load(f)


MESSAGES = load("messages.json")
JOURNAL = load("journal.json")
DEVICE_PUB = bytes.fromhex(JOURNAL["public_key"])
BACKEND_PUB = bytes.fromhex(MESSAGES["backend_public"])


def ed25519_verify(pub, message, sig):
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, message)
        return True
    except InvalidSignature:
        return False


@pytest.mark.parametrize("case", MESSAGES["receipt_codes"], ids=lambda c: c["name"])
def test_receipt_codes_verify_with_the_device_key_or_fail_as_stated(case):
    if case["expect"] == "ok":
        rc = receipt_verifier.verify_code(case["code"], DEVICE_PUB)
        assert rc["seq"] == case["fields"]["seq"]
        assert ed25519_verify(DEVICE_PUB, bytes.fromhex(case["signed_message"]), rc["sig"])
    else:
        with pytest.raises(getattr(receipt_verifier, case["expect"], None) or
                           getattr(receipt_verifier.core, case["expect"])):
            receipt_verifier.verify_code(case["code"], DEVICE_PUB)


def test_a_receipt_checked_with_another_key_names_the_key():
    with pytest.raises(receipt_verifier.ReceiptWrongKey):
        receipt_verifier.verify_code(MESSAGES["receipt_codes"][0]["code"], BACKEND_PUB)


@pytest.mark.parametrize("case", MESSAGES["receipt_acks"] + MESSAGES["settlement_acks"], ids=lambda c: c["name"])
def test_down_messages_pass_or_fail_the_agent_checks_with_real_signatures(case):
    try:
        msgs.decode_down(bytes.fromhex(case["hex"]), MESSAGES["device_id"], BACKEND_PUB,
                         checkpoint.key_id(BACKEND_PUB), ed25519_verify, kinds=KINDS)
        outcome = "ok"
    except msgs.DownRejected as exc:
        outcome = exc.reason
    assert outcome == case["expect"]


def test_the_backend_stores_each_vector_alert_once(tmp_path):
    batch, single = MESSAGES["alert_messages"]
    with open_store(str(tmp_path / "backend.db")) as store:
        ingest = Ingestor(store, None)
        ingest.alert(MESSAGES["device_id"], bytes.fromhex(batch["hex"]))
        ingest.alert(MESSAGES["device_id"], bytes.fromhex(single["hex"]))   # the first again, alone
        rows = store.alerts(MESSAGES["device_id"])
        assert store.stats()["findings"] == 0
        sent = cbor.loads(bytes.fromhex(batch["hex"]))["alerts"]
        assert sorted((r["seq"], r["kind"], r["state"]) for r in rows) == \
            sorted((a["seq"], a["kind"], a["state"]) for a in sent)


def test_the_host_verifier_reports_the_salvaged_range():
    sys.path.insert(0, VECTORS)
    try:
        import make_vectors
        import message_vectors
    finally:
        sys.path.pop(0)
    case, image = message_vectors.salvage_case(JOURNAL["device_id"], make_vectors.sale, make_vectors.KEY_SEED,
                                               make_vectors.CREATED_MS, make_vectors.BOOT_ID)
    assert case == MESSAGES["salvage"]
    with pytest.raises(Salvaged) as info:
        check_journal(image, [DEVICE_PUB])
    payload = case["salvage_record"]["payload"]
    assert "records %d..%d" % (payload["lost_first"], payload["lost_last"]) in str(info.value)
    assert case["quarantine_entry"]["sha256"] in str(info.value)


def test_agent_status_reads_the_vector_journal_as_stated(tmp_path):
    case = MESSAGES["agent_status"][0]
    with open(os.path.join(VECTORS, "journal.img.hex")) as f:
        image = bytes.fromhex(f.read().replace("\n", ""))
    path = tmp_path / "journal.dzj"
    path.write_bytes(image)
    view = journal_sync_view(str(path), case["now_ms"])
    assert view == case["json"]
    assert view["backlog"] == view["next_seq"] - view["acked"]


def test_the_spec_example_frame_is_the_vector():
    with open(os.path.join(VECTORS, "..", "..", "docs", "SPEC.md"), encoding="utf-8") as f:
        spec = f.read()
    example = spec[spec.index("the laptop's `info` request, seq 1:"):spec.index("### 8.2")]
    shown = "".join(example.split("```")[1].splitlines()[1].split()[:8])
    assert shown == MESSAGES["service_frames"][0]["hex"]
