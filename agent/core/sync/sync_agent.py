"""The agent's whole sync side (docs/SPEC.md §6), sans-IO: every rule an
MQTT adapter would otherwise hold.  Both adapters drive it: agent/
mqtt_link.py (paho, a thread, files) and firmware/umqtt_link.py
(micropython-lib's umqtt, one cooperative loop).

SyncCore (sync.py) is the message state machine; SyncAgent wraps it with
the rules that join it to the journal and the rest of the agent:

- adoption of the saved ack anchor after a restart (SPEC 6.6);
- the release floor: `released` follows `acked` up to the settlement
  watchdog's floor, asked at most once a second;
- the near-full alert, with the cursors made durable first (SPEC 6.6);
- alert transitions (sync_alerts.py) and their re-send after the first ack
  of a connection; the retained status with its counters and extras;
- the stall watch (sync_stall.py, SPEC 6.12) and the accounting of what
  the settlement hook refused.

It never touches a socket, a file or a clock.  Queries it may call are
passed in: `hash_at(seq)`, `release_floor()` (lowest seq not releasable,
or None), `status_extra()` (a dict for the status).  Inputs are methods
with `now` (ms); outputs are action tuples, SyncCore's
("connect",), ("read", from, max_bytes), ("publish", topic, payload, token,
retain), ("log", event, fields) and these:

  ("save_anchor", payload)        write the ack anchor durably, first
  ("cursors", acked, released)    note the cursors for the next commit
  ("flush_cursors",)              commit the noted cursors now, then flushed(fill)
  ("alert", kind, severity, detail)
  ("settlements", [(msg, payload), ...], redelivered)  then settled(result)

A log's fields may carry "level".  Portable: CPython and MicroPython.
"""

from daozhang.agent.core.sync import sync_alerts
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.agent.core.sync.sync_core import ONLINE, SyncCore
from daozhang.agent.core.sync.sync_stall import DEFAULT_STALL_AFTER_MS, PUBLISH_REFUSED, READ_FAILED, StallWatch

# The actions an adapter must carry out, in the order the docstring above names them.
ACTIONS = ("connect", "read", "publish", "save_anchor", "cursors", "flush_cursors", "alert",
           "settlements", "deposit", "log")


def perform(actions, handlers):
    """Carry out `actions` with `handlers` (name -> f(*args)); both adapters
    dispatch through this, so an action either adapter lacks fails loudly."""
    for action in actions:
        handlers[action[0]](*action[1:])


FLOOR_MAX_AGE_MS = 1000      # the watchdog walks every unsettled sale: not at every ack
RELEASE_CHECK_MS = 1000


class SyncAgent:
    def __init__(self, device_id, backend_pub, backend_kid, verify, hash_at, cursors, next_seq,
                 settings=None, near_full=0.8, stall_after_ms=DEFAULT_STALL_AFTER_MS,
                 release_floor=None, status_extra=None):
        """`cursors`: the journal's noted (acked, released)."""
        self.device_id = device_id
        self.core = SyncCore(device_id, backend_pub, backend_kid, verify, hash_at, cursors[0],
                             next_seq, settings)
        self.released = cursors[1]
        self.near_full = near_full
        self.stall = StallWatch(stall_after_ms)
        self.release_floor = release_floor
        self.status_extra = status_extra
        self.active = sync_alerts.ActiveAlerts(device_id)
        self.settle_n = None            # the terminal's settlement cursor, as last reported
        self.online_since = 0
        self._problem = None            # (reason, detail) for the stall watch
        self._near_full_raised = False
        self._floor_at = None
        self._floor_value = None
        self._last_release_check = None
        self._resend_active = False
        self._alerts_changed = False
        self._status_due = False

    # -- start-up -------------------------------------------------------------

    def adopt_anchor(self, payload, now):
        """The saved ack may be newer than the cursors in the last checkpoint
        (they ride on the next commit): take it back after a restart, once it
        passes the same checks as a fresh ack."""
        core = self.core
        probe = SyncCore(self.device_id, core.backend_pub, core.backend_kid, core.verify,
                         core.hash_at, 0, core.next_seq)
        actions = probe.message("acks", payload, now)
        kind = actions[0][0] if actions else None
        if kind == "ack" or (kind == "duplicate" and actions[0][1] == 0):
            to = probe.acked
            out = []
            if to > core.acked:
                out.append(self._cursors(to, now))
                core.acked = core.next_send = to
            out.append(("log", "sync_anchor_loaded", {"to": to}))
            return out
        reason = actions[0][1] if kind == "reject" else kind
        # An anchor beyond the journal: rollback or truncation (SPEC 3.11, 6.6).
        return [("log", "sync_anchor_rejected", {"level": "error", "reason": reason}),
                ("alert", "security", "critical",
                 {"detail": "saved ack anchor does not match the journal: %s" % reason})]

    # -- alerts from the rest of the agent --------------------------------------------

    def queue_alert(self, alert, now):
        """One alert transition (a dict) for the `alerts` topic."""
        payload = sync_alerts.one_alert(self.device_id, alert, now)
        self.active.note(alert, now, payload)
        self.core.queue_alert(payload)
        self._alerts_changed = True

    def queue_alerts(self, alerts, now):
        """Many transitions, ALERTS_PER_MESSAGE to a message.  The topic copy
        is best effort: a flood keeps the newest messages (memory bounded)."""
        payloads, skipped = sync_alerts.alert_chunks(self.device_id, alerts, now,
                                                     self.core.settings["max_alerts"])
        self.core.alerts_dropped += skipped
        last = {}
        for alert in alerts:
            last[alert.get("kind")] = alert
        for kind in last:
            self.active.note(last[kind], now)
        for payload in payloads:
            self.core.queue_alert(payload)
        self._alerts_changed = True

    # -- the loop ----------------------------------------------------------------

    def tick(self, now, next_seq, fill, cursors_pending):
        """Once per step of the adapter's loop: the journal's committed tail,
        its effective fill, and whether noted cursors await a commit."""
        self.core.journal_progress(next_seq)
        out = self._watch_stall(now)
        if self._alerts_changed and self.status_extra is not None and self.core.state == ONLINE:
            out.extend(self._status(now, None))
        self._alerts_changed = False
        out.extend(self._check_fill(fill, cursors_pending))
        if self._last_release_check is None or now - self._last_release_check >= RELEASE_CHECK_MS:
            self._last_release_check = now
            out.extend(self._follow_floor(now))
        out.extend(self._from_core(self.core.poll(now), now))
        return out

    def next_wakeup(self, now):
        return self.core.next_wakeup(now)

    def connected(self, now):
        self.online_since = now
        self._resend_active = True
        return self._from_core(self.core.connected(now), now)

    def lost(self, now, rand, cause=""):
        return self.core.lost(now, rand, cause)

    def frames(self, records, end, last_hash, now):
        return self._from_core(self.core.frames(records, end, last_hash, now), now)

    def read_failed(self, seq, error, now):
        """The adapter could not read the journal at `seq`: keep trying, slowly."""
        self._problem = (READ_FAILED, error)
        return [("log", "sync_read_failed", {"level": "error", "seq": seq, "error": error})] + \
            self.frames([], seq, None, now)

    def puback(self, token, now):
        return self.core.puback(token, now)

    def publish_refused(self, topic, reason):
        """The broker refused a publish (an ACL): final for that message."""
        self._problem = (PUBLISH_REFUSED, "%s: %s" % (topic, reason))
        return [("log", "sync_publish_refused", {"level": "warning", "topic": topic,
                                                 "reason": reason})]

    def message(self, topic, payload, now, redelivered=False):
        """A down message; `redelivered`: the broker's DUP flag."""
        return self._from_core(self.core.message(topic, payload, now), now, redelivered)

    def settled(self, result):
        """What the settlement hook did with a batch: {"settle_n", "moved",
        "rejected": [reason, ...]} (SPEC 7.8.7)."""
        if not isinstance(result, dict):
            return
        for reason in result.get("rejected", ()):
            self.core.rejected[reason] = self.core.rejected.get(reason, 0) + 1
            self.core.last_reject = reason
        if result.get("settle_n") is not None:
            self.settle_n = result["settle_n"]
        if result.get("moved"):
            self._status_due = True

    def down_done(self, now):
        """After a down message was acknowledged: the status, if the
        settlement cursor moved (how the backend learns to stop sending)."""
        if self._status_due and self.core.state == ONLINE:
            self._status_due = False
            return self._status(now, None)
        return []

    def flushed(self, fill):
        """The answer to ("flush_cursors",): the fill once they are durable."""
        if fill < self.near_full:
            self._near_full_raised = False
            return []
        return self._near_full_alert(fill)

    # -- rules -------------------------------------------------------------------------

    def _from_core(self, actions, now, redelivered=False):
        out = []
        for action in actions:
            name = action[0]
            if name == "publish" and action[1] == "status":
                out.extend(self._status(now, action[3]))
            elif name == "ack":
                # The anchor first: after a crash the cursors come back from it.
                out.append(("save_anchor", action[3]))
                out.append(self._cursors(action[1], now))
                out.append(("log", "sync_acked", {"to": action[1],
                                                  "backlog": self.core.next_seq - action[1]}))
                if self._resend_active:
                    self._resend_active = False
                    for payload in self.active.payloads():
                        self.core.queue_alert(payload)
                    self._alerts_changed = True
            elif name == "reject":
                out.append(("log", "sync_rejected", {"level": "warning", "reason": action[1],
                                                     "detail": action[2]}))
                out.append(("alert", "security", "critical",
                            {"detail": "rejected down message: " + action[1], "reason": action[1]}))
            elif name == "duplicate":
                out.append(("log", "sync_duplicate_ack", {"to": action[1]}))
            elif name == "settlement":
                out.append(("settlements", [(action[1], action[2])], redelivered))
            elif name == "settlements":
                out.append(("settlements", action[1], redelivered))
            else:
                out.append(action)
        return out

    def _floor(self, now, max_age_ms):
        """The lowest seq not releasable, or None without a watchdog.  Its
        None ("all released") covers only what was committed when it was
        asked: it becomes the next seq known then, so a sale committed since
        is never released on a stale answer."""
        if self.release_floor is None:
            return None
        if self._floor_at is None or now - self._floor_at >= max_age_ms:
            known = self.core.next_seq
            floor = self.release_floor()
            self._floor_value = known if floor is None else min(floor, known)
            self._floor_at = now
        return self._floor_value

    def _cursors(self, to, now):
        floor = self._floor(now, FLOOR_MAX_AGE_MS)
        released = to if floor is None else min(to, floor)
        if released > self.released:
            self.released = released
        return ("cursors", to, self.released)

    def _follow_floor(self, now):
        """The watchdog's floor moves on its own (a sale settles, or
        expires): `released` follows it up to `acked`."""
        acked = self.core.acked
        if self.released >= acked or self.release_floor is None:
            return []
        floor = self._floor(now, 0)
        if min(acked, floor) > self.released:
            self.released = min(acked, floor)
            return [("cursors", acked, self.released)]
        return []

    def _check_fill(self, fill, cursors_pending):
        if fill >= self.near_full and not self._near_full_raised:
            self._near_full_raised = True
            if cursors_pending:
                return [("flush_cursors",)]     # make the freed space durable first
            return self._near_full_alert(fill)
        if fill < self.near_full and self._near_full_raised:
            self._near_full_raised = False
            return [("log", "journal_near_full_cleared", {"fill": "%.3f" % fill}),
                    ("alert", "journal_near_full", "info", {"state": "clear", "fill": "%.3f" % fill})]
        return []

    def _near_full_alert(self, fill):
        return [("log", "journal_near_full", {"level": "warning", "fill": "%.3f" % fill}),
                ("alert", "journal_near_full", "warning",
                 {"fill": "%.3f" % fill, "threshold": "%.3f" % self.near_full})]

    def _watch_stall(self, now):
        core = self.core
        verdict = self.stall.observe(now, core.state == ONLINE, core.acked, core.next_seq,
                                     self._problem)
        self._problem = None
        if verdict is None:
            return []
        if verdict[0] == "stalled":
            fields = dict(verdict[2])
            fields["level"] = "error"
            return [("log", "sync_stalled", fields), ("alert", "sync_stalled", "warning", verdict[2])]
        detail = dict(verdict[2])
        detail["state"] = "clear"
        return [("log", "sync_moving", verdict[2]), ("alert", "sync_stalled", "info", detail)]

    # -- status and health ----------------------------------------------------------------

    def _status(self, now, token):
        """The retained status: counters, and the settlement side's extras
        with when this connection began (a new value tells the backend our
        broker session may be gone, SPEC 7.8.7)."""
        extra = {"c": self.counters()}
        out = []
        if self.status_extra is not None:
            try:
                more = sync_alerts.cbor_safe(dict(self.status_extra()))
                more["online_since"] = self.online_since
                more["c"] = extra["c"]
                extra = more
            except Exception as exc:     # the plain status still goes up
                out.append(("log", "status_extra_failed", {"level": "error", "error": str(exc)}))
                extra = None
        out.append(("publish", "status", msgs.encode_status(self.device_id, "online", now, extra),
                    token, True))
        return out

    def status_payload(self, now):
        return self._status(now, None)[-1][2]

    def counters(self):
        """The few sync counters the retained status carries (SPEC 6.2)."""
        h = self.core.health()
        return {"acked": h["acked"], "backlog": h["backlog"], "published": h["published"],
                "rejected": h["rejected"], "reconnects": h["reconnects"]}

    def position(self):
        """What the settlement side reads: acked, next_seq, connection state."""
        return {"acked": self.core.acked, "next_seq": self.core.next_seq, "state": self.core.state}

    def health(self):
        out = self.core.health()
        out["device"] = self.device_id
        out["settle_n"] = self.settle_n
        out["stalled"] = self.stall.state()
        return out
