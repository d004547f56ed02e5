"""Ingest an acquirer settlement file at the backend; send settlement acks
(docs/SPEC.md §7.8).  `daozhang backend settle` is the CLI face.

For each good row of the file (settlement_files/), in file order:

1. store it by acquirer_ref (store.add_settlement; status "new").  A row
   whose acquirer_ref is already stored with a final status (sent, unknown,
   unrouted) is skipped: re-ingesting a file changes nothing and sends
   nothing.  A row stored but never sent (the broker failed mid-run) is
   sent on the next run.
2. match it to a stored receipt (settlement_checks.Matcher: terminal_id +
   rrn, else auth_code + amount within the time window, same money
   direction) over every device's transaction records;
3. route it: the matched receipt's device; a row matching nothing goes to
   the device whose receipts carry the row's terminal_id (the newest such
   device), else nowhere ("unrouted": stored only, the operator sees it);
4. sign the ack (agent/core/sync/settlement_ack.py) with the device's next
   delivery number and queue it in the settlement outbox, pending until
   the terminal confirms it (backend/settlement_outbox.py, SPEC 7.8.7);
   the row's status becomes "sent" (matched) or "unknown" (routed by
   terminal only);
5. publish the device's first window of pending acks, batched, QoS 1 on
   daozhang/v1/<dev>/acks.  What the terminal does not confirm, `backend
   run` sends again when it comes online and on a timer.

`Settler` has no MQTT in it: `publish(device_id, payload)` is an input
(returns once the broker holds the message, or raises).
"""

import os
import time

from daozhang.agent.core.errors import DaozhangError, LocalError
from daozhang.agent.core.settlement.settlement_checks import DEFAULT_MATCH_WINDOW, Matcher, txn_time_ms
from daozhang.agent.core.sync import settlement_ack, topics
from daozhang.backend.settlement_outbox import Outbox, Resender
from daozhang.mqtt_tls import paho_client, tls_context

FINAL = ("sent", "unknown", "unrouted")


def _entry(record, device_id):
    txn = record["payload"]
    try:
        when = txn_time_ms(txn)
    except DaozhangError:
        return None
    if not isinstance(txn.get("amount"), int):
        return None
    return {"txn": txn, "kind": txn.get("kind"), "time": when, "device_id": device_id,
            "seq": record["seq"], "pos_txn_id": txn.get("pos_txn_id")}


class Settler:
    def __init__(self, store, signer, publish, clock=None, random_bytes=os.urandom,
                 match_window_ms=DEFAULT_MATCH_WINDOW, log=None):
        self.store = store
        self.signer = signer
        self.publish = publish
        self.clock = clock or (lambda: time.time_ns() // 1000000)
        self.random_bytes = random_bytes
        self.log = log or (lambda event, level="info", **kw: None)
        self.matcher = Matcher(match_window_ms)
        self.outbox = Outbox(store)
        self.resender = Resender(self.outbox, publish, log=self.log)
        self.terminals = {}     # terminal_id -> device_id (the newest receipt's)
        self._index()

    def _index(self):
        newest = {}
        for device in self.store.devices():
            device_id = device["device_id"]
            for rec in self.store.receipts(device_id):
                entry = _entry(rec, device_id)
                if entry is None:
                    continue
                self.matcher.add(entry)
                terminal = entry["txn"].get("terminal_id")
                if terminal and entry["time"] >= newest.get(terminal, -1):
                    newest[terminal] = entry["time"]
                    self.terminals[terminal] = device_id

    def route(self, row):
        """(device_id or None, seq or None, "sent" | "unknown" | "unrouted")."""
        entry = self.matcher.match(row)
        if entry is not None:
            return entry["device_id"], entry["seq"], "sent"
        device_id = self.terminals.get(row.get("terminal_id"))
        if device_id is not None:
            return device_id, None, "unknown"
        return None, None, "unrouted"

    def ack_payload(self, device_id, seq, row, n):
        return settlement_ack.encode(device_id, self.random_bytes(settlement_ack.ID_SIZE),
                                     self.clock(), seq, settlement_ack.wire_row(row),
                                     self.signer.kid, self.signer.signer.sign, n)

    def _flush(self, routed, touched):
        """Store a chunk of rows, their verdicts and their numbered, signed
        acks (pending) in one transaction (Outbox.settle_rows)."""
        if not routed:
            return
        numbers = self.outbox.settle_rows(
            [(ref, body, device_id, seq, verdict,
              None if device_id is None else
              (lambda n, d=device_id, q=seq, r=row: self.ack_payload(d, q, r, n)))
             for ref, body, device_id, seq, verdict, row in routed], self.clock())
        touched.update(numbers)
        del routed[:]

    def settle(self, parsed, progress=None):
        """Ingest a SettlementFile; returns the report dict."""
        stored = {}
        for s in self.store.settlements():
            stored[s["acquirer_ref"]] = s["status"]
        # A SettlementStream (settlement_files/) is read row by row: a file of any
        # size in bounded memory; a SettlementFile (a list of rows) as it is.
        streamed = hasattr(parsed, "info")
        rows = parsed.rows() if streamed else parsed.rows
        total = None if streamed else len(rows)
        info = parsed.info if streamed else parsed
        report = {"path": info.name, "rows": 0, "bad_rows": [], "repeated": 0, "new": 0,
                  "already": 0, "sent": 0, "unknown": 0, "unrouted": 0, "devices": {}}
        routed, touched = [], set()
        for i, row in enumerate(rows):
            report["rows"] += 1
            ref = row["acquirer_ref"]
            status = stored.get(ref)
            if status in FINAL:
                report["already"] += 1
            else:
                body = dict(row)
                body.pop("line", None)
                if status is None:
                    report["new"] += 1
                device_id, seq, verdict = self.route(row)
                if device_id is not None:
                    report["devices"][device_id] = report["devices"].get(device_id, 0) + 1
                routed.append((ref, body, device_id, seq, verdict, row))
                if len(routed) >= 500:
                    self._flush(routed, touched)
                report[verdict] += 1
                self.log("settlement_row", ref=ref, device=device_id or "-", seq=seq,
                         verdict=verdict)
            if progress is not None:
                progress(i + 1, total)
        self._flush(routed, touched)
        for device_id in sorted(touched):
            self.resender.send(device_id, self.clock())
        report["bad_rows"] = list(info.bad_rows)
        report["repeated"] = info.repeated
        report["card_masked"] = info.card_count
        report["pending"] = self.outbox.counts()["pending"]
        return report


class MqttPublisher:
    """Publishes settlement acks with the backend's broker identity, QoS 1;
    `publish` returns once the broker PUBACKed (so "sent" means the broker
    holds it for the device's persistent session)."""

    def __init__(self, broker, timeout=30.0):
        import ssl
        import threading
        import uuid

        self.timeout = timeout
        self.client = paho_client("settle-%s" % uuid.uuid4().hex[:12])
        self._connected = threading.Event()
        self._refused = None
        self.client.on_connect = self._on_connect
        try:
            if broker.get("tls", True):
                self.client.tls_set_context(tls_context(broker["ca"], broker["cert"], broker["key"]))
            self.client.connect(broker["host"], int(broker["port"]),
                                keepalive=int(broker.get("keepalive", 30)))
        except (ssl.SSLError, OSError, KeyError) as exc:
            raise LocalError("cannot reach the broker %s:%s: %s: check [broker] in the config"
                             % (broker.get("host"), broker.get("port"), exc)) from None
        self.client.loop_start()
        if not self._connected.wait(timeout) or self._refused:
            self.close()
            raise LocalError("broker %s:%s refused or did not answer: %s"
                             % (broker["host"], broker["port"], self._refused or "timeout"))

    def _on_connect(self, client, userdata, flags, rc, props):
        if rc.is_failure:
            self._refused = str(rc)
        self._connected.set()

    def publish(self, device_id, payload):
        info = self.client.publish(topics.device_topic(device_id, topics.ACKS), payload, qos=1)
        info.wait_for_publish(self.timeout)
        if not info.is_published():
            raise LocalError("broker did not acknowledge the settlement ack for %s within %ss"
                             % (device_id, self.timeout))

    def close(self):
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
