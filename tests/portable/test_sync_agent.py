"""The sync rules beyond the message machine (agent/core/sync/sync_agent.py):
release floor, near-full, anchor adoption, alert re-send, stall, status.
Plain functions: pytest runs them on CPython, tests/mp on MicroPython."""

import hashlib
import random

from daozhang.agent.core import cbor
from daozhang.agent.core.journal import checkpoint
from daozhang.agent.core.sync import sync_alerts
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.agent.core.sync.sync_agent import SyncAgent
from portable.sync_fakes import MemoryJournal

DEVICE = "mcu-sync-1"
PUB = b"P" * 32
KID = checkpoint.key_id(PUB)


def sign(message):
    digest = hashlib.sha256(message).digest()
    return digest + digest


def verify(pub, message, sig):
    return pub == PUB and sig == sign(message)


def ack(journal, to, at=1):
    head = journal.hash_at(to - 1)
    return msgs.encode_receipts_ack(DEVICE, to, head, at, KID,
                                    sign(msgs.receipts_ack_message(DEVICE, to, head, at, KID)))


class Floor:
    def __init__(self, value=None):
        self.value = value
        self.asked = 0

    def __call__(self):
        self.asked += 1
        return self.value


def agent(journal, **kw):
    return SyncAgent(DEVICE, PUB, KID, verify, journal.hash_at, journal.cursors(), journal.tail(), **kw)


def online(a, journal, now=0):
    """Connect and send the whole backlog; returns the actions of the ack path."""
    a.tick(now, journal.tail(), 0.1, False)
    a.connected(now)
    out = a.tick(now, journal.tail(), 0.1, False)
    read = [x for x in out if x[0] == "read"][0]
    records, end, last = journal.read(read[1], read[2])
    return a.frames(records, end, last, now)


def names(actions):
    return [x[0] for x in actions]


def test_an_ack_saves_the_anchor_before_the_cursors_and_releases_up_to_the_floor():
    j = MemoryJournal()
    j.append(10)
    floor = Floor(4)
    a = agent(j, release_floor=floor)
    online(a, j)
    out = a.message("acks", ack(j, 10), 5)
    assert names(out)[:2] == ["save_anchor", "cursors"] and out[1] == ("cursors", 10, 4)


def test_the_floor_is_asked_at_most_once_a_second():
    j = MemoryJournal()
    j.append(10)
    floor = Floor(2)
    a = agent(j, release_floor=floor)
    online(a, j)
    a.message("acks", ack(j, 5), 100)
    asked = floor.asked
    a.message("acks", ack(j, 6), 200)
    assert floor.asked == asked
    floor.value = 6
    out = a.message("acks", ack(j, 7), 100 + 1000)
    assert floor.asked == asked + 1 and out[1] == ("cursors", 7, 6)


def test_no_floor_answer_means_only_what_was_committed_when_asked():
    j = MemoryJournal()
    j.append(3)
    a = agent(j, release_floor=Floor(None))
    online(a, j)
    out = a.message("acks", ack(j, 3), 10)
    assert out[1] == ("cursors", 3, 3)


def test_released_follows_a_moving_floor_up_to_acked():
    j = MemoryJournal()
    j.append(8)
    floor = Floor(2)
    a = agent(j, release_floor=floor)
    online(a, j, now=0)
    a.message("acks", ack(j, 8), 0)
    floor.value = 6
    out = a.tick(2000, j.tail(), 0.1, False)
    assert ("cursors", 8, 6) in out
    floor.value = 50
    out = a.tick(4000, j.tail(), 0.1, False)
    assert ("cursors", 8, 8) in out


def test_released_never_passes_acked_nor_the_floor_and_never_goes_back():
    # The watchdog's floor (lowest unsettled seq) only rises; None: all settled.
    if hasattr(random, "Random"):
        rng = random.Random(7)
    else:                               # MicroPython: one module-level generator
        random.seed(7)
        rng = random
    for _ in range(20):
        j = MemoryJournal()
        j.append(40)
        floor = Floor(0)
        a = agent(j, release_floor=floor)
        online(a, j)
        now, acked, released, lowest = 0, 0, 0, 0
        for _ in range(30):
            now += rng.getrandbits(11)
            lowest = min(40, lowest + rng.getrandbits(2))
            floor.value = None if lowest >= 40 else lowest
            if rng.getrandbits(1):
                acked = min(40, acked + rng.getrandbits(3))
                out = a.message("acks", ack(j, acked), now) if acked else []
            else:
                out = a.tick(now, j.tail(), 0.1, False)
            for x in out:
                if x[0] == "cursors":
                    assert released <= x[2] <= x[1] and x[2] <= lowest
                    released = x[2]
        assert a.released == released


def test_near_full_makes_the_cursors_durable_before_it_alerts():
    j = MemoryJournal()
    a = agent(j, near_full=0.8)
    assert a.tick(0, 0, 0.85, True)[0] == ("flush_cursors",)
    assert a.flushed(0.5) == []
    out = a.tick(10, 0, 0.9, False)
    assert [x[1] for x in out if x[0] == "alert"] == ["journal_near_full"]
    assert [x for x in a.tick(20, 0, 0.95, False) if x[0] == "alert"] == []
    out = a.tick(30, 0, 0.2, False)
    cleared = [x for x in out if x[0] == "alert"]
    assert cleared[0][1] == "journal_near_full" and cleared[0][3]["state"] == "clear"


def test_still_full_after_the_flush_alerts():
    a = agent(MemoryJournal(), near_full=0.8)
    a.tick(0, 0, 0.85, True)
    out = a.flushed(0.84)
    assert [x[2] for x in out if x[0] == "alert"] == ["warning"]


def test_active_alerts_go_up_again_after_the_first_ack_of_a_connection():
    j = MemoryJournal()
    j.append(2)
    a = agent(j)
    a.queue_alert({"kind": "overdue", "state": "firing"}, 1)
    a.queue_alert({"kind": "clock", "state": "firing"}, 1)
    a.queue_alert({"kind": "clock", "state": "clear"}, 2)
    online(a, j)
    for token in list(a.core.tokens):
        a.puback(token, 3)
    assert a.core.alerts == []
    a.message("acks", ack(j, 2), 4)
    again = [cbor.loads(p[0])["alert"]["kind"] for p in a.core.alerts]
    assert again == ["overdue"]
    a.message("acks", ack(j, 2), 5)
    assert len(a.core.alerts) == 1


def test_many_alerts_go_up_in_chunks_and_a_flood_keeps_the_newest():
    a = agent(MemoryJournal(), settings={"max_alerts": 4})
    alerts = [{"kind": "overdue", "key": i, "state": "firing"} for i in range(64 * 6 + 1)]
    a.queue_alerts(alerts, 9)
    assert len(a.core.alerts) == 4 and a.core.alerts_dropped == 3
    last = cbor.loads(a.core.alerts[-1][0])
    assert [x["key"] for x in last["alerts"]] == [64 * 6]
    assert cbor.loads(a.active.payloads()[0])["alert"]["key"] == 64 * 6


def test_a_link_up_without_acks_stalls_and_recovers():
    j = MemoryJournal()
    j.append(2)
    a = agent(j, stall_after_ms=1000)
    online(a, j)
    a.tick(100, j.tail(), 0.1, False)
    out = a.tick(1200, j.tail(), 0.1, False)
    assert [x[1] for x in out if x[0] == "alert"] == ["sync_stalled"] and a.health()["stalled"]
    a.message("acks", ack(j, 2), 1300)
    out = a.tick(1400, j.tail(), 0.1, False)
    assert [x[3].get("state") for x in out if x[0] == "alert"] == ["clear"]


def test_the_status_carries_counters_extras_and_when_the_connection_began():
    j = MemoryJournal()
    j.append(3)
    a = agent(j, status_extra=lambda: {"alerts": {"firing": 2}, "big": 2 ** 70})
    out = online(a, j, now=77)
    status = cbor.loads(a.status_payload(80))
    assert status["alerts"] == {"firing": 2} and status["online_since"] == 77
    assert status["c"]["backlog"] == 3 and status["big"] == str(2 ** 70)
    assert out is not None


def test_a_failing_status_extra_still_sends_the_plain_status():
    def broken():
        raise ValueError("no summary")
    a = agent(MemoryJournal(), status_extra=broken)
    out = a._status(5, None)
    assert out[0][1] == "status_extra_failed" and cbor.loads(out[1][2])["state"] == "online"


def test_what_the_settlement_hook_refused_counts_as_rejected():
    j = MemoryJournal()
    a = agent(j)
    a.settled({"rejected": ["replay", "stale"], "settle_n": 4, "moved": True})
    assert a.health()["rejected_by_reason"] == {"replay": 1, "stale": 1} and a.settle_n == 4
    assert a.down_done(1) == []          # offline: the status waits for a connection


def test_cbor_safe_keeps_what_cbor_carries():
    assert sync_alerts.cbor_safe({1: (1.5, None, True, b"x", -2 ** 64)}) == \
        {"1": ["1.5", None, True, b"x", str(-2 ** 64)]}
