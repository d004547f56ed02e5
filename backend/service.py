"""The reference backend worker: `daozhang backend run --config FILE` (SPEC 6.7).

`Ingestor` is the logic, without MQTT: one receipts message in, the ack to
publish (or None) out, findings and records into the store.  `run_service`
connects it to a broker with an MQTT 5 shared subscription, so several
worker processes split the devices' messages; each message is PUBACKed
only after its records are committed (paho manual_ack), and its ack is
computed from the database after that commit, so two workers seeing one
device's batches out of order still ack only contiguous, chained ranges.

Config (TOML; backend/config.py reads it):

    [broker]
    host = "127.0.0.1"
    port = 8884                  # the broker's backend listener (examples/mosquitto)
    ca = "ca.crt"
    cert = "backend.crt"
    key = "backend-tls.key"
    [backend]
    key = "backend.key"          # Ed25519, signs acks (devices hold backend.pub)
    db = "backend.db"            # SQLite path, or postgresql://...
    share_group = "backend-5c1e9b0d7a3f2468"   # required: a random secret per deployment
    gap_grace_s = 30             # a gap still open this long becomes a finding
    log = ""                     # a file for the event log (default stderr)
"""

import queue
import signal
import ssl
import sys
import threading
import time

from daozhang.agent.core import card_data, cbor
from daozhang.agent.core.errors import DaozhangError, DecodeError, StorageError
from daozhang.agent.core.sync import topics
from daozhang.backend import ingest
from daozhang.mqtt_tls import paho_client, set_nodelay
from daozhang.backend.ack import AckSigner
from daozhang.backend.config import SESSION_EXPIRY_S, worker_client_id
from daozhang.backend.group_commit import handle_group
from daozhang.backend.key_registry import KeyRegistry
from daozhang.backend.settlement_outbox import RESEND_MS, STALL_MS, Outbox, Resender

TYPE_ALERT = 3          # journal record type of an alert transition (SPEC 3.5)
TYPE_CHECKPOINT = 8     # ... of a checkpoint (SPEC 3.6)
MAX_GROUP = 64          # queued messages handled (and committed) together
# Observers of the worker loop (backend/metrics.py): called with
# ("worker", Ingestor) once it exists and ("group", messages)
# after each group of messages was committed and PUBACKed.  Empty: no cost.
OBSERVERS = []


def _observe(*event):
    for observer in OBSERVERS:
        observer(*event)


def now_ms():
    return time.time_ns() // 1000000


class EventLog:
    def __init__(self, path=None):
        self.stream = open(path, "a", buffering=1) if path else sys.stderr
        self._lock = threading.Lock()

    def __call__(self, event, level="info", **fields):
        parts = ["ts=%.3f" % time.time(), "level=" + level, "event=" + event]
        for key in sorted(fields):
            text = str(fields[key])
            if not text or any(c in text for c in ' ="\n'):
                text = '"' + text.replace('"', "'").replace("\n", " ") + '"'
            parts.append("%s=%s" % (key, text))
        with self._lock:
            self.stream.write(" ".join(parts) + "\n")
            self.stream.flush()


class Ingestor:
    """Receipts and alerts from devices into the store; acks out."""

    def __init__(self, store, signer, log=None, gap_grace_ms=30000, clock=now_ms, all_signatures=False):
        self.store = store
        # SPEC 6.7.1: every checkpoint's signature (audit), or the newest of each run.
        self.all_signatures = all_signatures
        self.signer = signer
        self.log = log or (lambda event, level="info", **kw: None)
        self.gap_grace_ms = gap_grace_ms
        self.clock = clock
        self.gaps = {}          # device -> (missing_from, missing_to, first_seen_ms)
        self.keys = KeyRegistry(store, self.log)
        self.counts = {"messages": 0, "records": 0, "acks": 0, "findings": 0, "replayed": 0}

    def _check(self, device_id, state, payload):
        """check_batch against the cached key; before calling a checkpoint
        `wrong_key`, reload the key from the store once (another worker may
        have followed a rotation)."""
        check = ingest.check_batch(device_id, state[0], payload, state[1], self.all_signatures)
        if any(f.kind == ingest.WRONG_KEY for f in check.findings):
            fresh = self.keys.refresh(device_id)
            if fresh is not None and fresh != state:
                check = ingest.check_batch(device_id, fresh[0], payload, fresh[1], self.all_signatures)
        return check

    def _finding(self, device_id, finding):
        stored = self.store.add_finding(device_id, finding.seq, finding.kind, finding.detail,
                                        finding.evidence, finding.dedup_key(device_id))
        self.counts["findings"] += 1
        self.log("finding", level="warning", device=device_id, kind=finding.kind,
                 seq=finding.seq, new=stored, detail=finding.detail)

    def receipts(self, device_id, payload):
        """Store one receipts message; return the ack payload to publish, or None."""
        return self.receipts_many(device_id, [payload])

    def receipts_many(self, device_id, payloads):
        """Store several receipts messages of one device in ONE transaction
        (a worker drains what queued up while it was busy: one commit and
        one ack for all); each message is checked on its own.  Returns the
        ack payload to publish, or None."""
        self.counts["messages"] += len(payloads)
        state = self.keys.current(device_id)
        if state is None:
            self._finding(device_id, ingest.Finding(ingest.UNKNOWN_DEVICE, None,
                                                    "receipts from unregistered device %r" % device_id))
            return None
        records = []
        checks = []
        for payload in payloads:
            check = self._check(device_id, state, payload)
            # The next message continues from where this one left the key.
            state = (check.keys.public_bytes, check.keys.pending)
            for finding in check.findings:
                self._finding(device_id, finding)
            if check.records:
                records.extend(check.records)
                checks.append(check)
        if not records:
            return None
        result = self.store.store_batch(device_id, records)
        for check in checks:
            self.keys.after_batch(device_id, check.keys)
        self.counts["records"] += len(result.new)
        self._journaled_alerts(device_id, records, result.new)
        if result.forked:
            self.log("fork", level="warning", device=device_id, seqs=len(result.forked),
                     first=result.forked[0])
        contiguous = result.contiguous_seq
        last = max(r["seq"] for r in records)
        start = 0 if contiguous is None else contiguous + 1
        # Per message, as if each came alone: a group that joins a resent or
        # forked message with one beyond a gap must still open the gap.
        beyond = [first for first in (min(r["seq"] for r in c.records) for c in checks) if first > start]
        if beyond:
            self.gaps.setdefault(device_id, (start, min(beyond) - 1, self.clock()))
        elif device_id in self.gaps and contiguous is not None and contiguous >= self.gaps[device_id][1]:
            del self.gaps[device_id]
        if contiguous is None:
            return None
        to = contiguous + 1
        if self.store.record_ack(device_id, contiguous, result.head_hash):
            return self._ack(device_id, to, result.head_hash)
        if not result.new and last < to:
            return self._republish(device_id, checks[0], to, result.head_hash)
        return None

    def _journaled_alerts(self, device_id, records, new):
        """Alert transitions the device journaled (type 3) are alerts too: the
        durable path, when the alerts-topic copy was lost (it is best effort:
        the broker drops it while no worker is subscribed)."""
        new = set(new)
        batch = []
        for r in records:
            if r["type"] == TYPE_ALERT and r["seq"] in new and isinstance(r["payload"], dict):
                p = r["payload"]
                batch.append((r["seq"], _text(p.get("kind", "unknown")),
                              _text(p.get("state", "firing")), _text(p.get("severity", "warning")),
                              {"v": 1, "dev": device_id, "alert": p, "journaled": True}, None))
        if batch:
            self.store.add_alerts(device_id, batch)     # one transaction per message

    def _republish(self, device_id, check, to, head):
        """Records we already acknowledged came again: send the ack again.

        A device resends from its acked cursor when it lost our ack.  Records
        below the device's own committed `acked` cursor come again too when
        the broker restarts from its persistence snapshot (mosquitto's
        autosave_interval) and redelivers messages we already stored; those
        bytes cannot be told from a replay by an attacker, and either way
        they are identical to what is stored (a difference is a fork) and
        change nothing: logged and counted (`replayed`), not a finding."""
        device_acked = self._device_acked(device_id)
        if device_acked is not None and check.first is not None and check.first < device_acked:
            self.counts["replayed"] += 1
            self.log("receipts_replayed", level="warning", device=device_id, first=check.first,
                     end=check.end, device_acked=device_acked)
        return self._ack(device_id, to, head)

    def _device_acked(self, device_id):
        """`acked` of the device's newest stored checkpoint."""
        found = self.store.newest_record_of_type(device_id, TYPE_CHECKPOINT)
        acked = found[1].get("acked") if found is not None and isinstance(found[1], dict) else None
        return acked if isinstance(acked, int) else None

    def _ack(self, device_id, to, head):
        self.counts["acks"] += 1
        self.log("ack_sent", device=device_id, to=to)
        return self.signer.receipts_ack(device_id, to, head, self.clock())

    def check_gaps(self):
        """Gaps open longer than the grace become findings (out-of-order
        delivery between workers closes a gap within moments)."""
        now = self.clock()
        for device_id, (start, end, seen) in list(self.gaps.items()):
            if now - seen < self.gap_grace_ms:
                continue
            head = self.store.head(device_id)
            contiguous = -1 if head is None else head[0]
            del self.gaps[device_id]
            if contiguous < end:
                self._finding(device_id, ingest.Finding(
                    ingest.GAP, contiguous + 1, "records %d..%d missing for %d ms while later ones "
                    "arrived" % (contiguous + 1, end, now - seen)))

    def alert(self, device_id, payload):
        """One `alerts` message: a single transition ({"alert": map}) or a
        batch ({"alerts": [map, ...]}, SPEC 6.2); each stored once."""
        try:
            msg = cbor.loads(payload)
            if msg.get("dev") != device_id:
                raise DecodeError("alert payload: wrong device")
            batch = msg["alerts"] if "alerts" in msg else [msg["alert"]]
            if not isinstance(batch, list) or not all(isinstance(a, dict) for a in batch):
                raise DecodeError("alert payload: wrong shape")
        except (DecodeError, KeyError, TypeError, AttributeError) as exc:
            self._finding(device_id, ingest.Finding(ingest.MALFORMED, None, "alert payload: %s" % exc,
                                                    bytes(payload[:4096])))
            return
        items = []
        for alert in batch:
            kind = _text(alert.get("kind", "unknown"))
            state = _text(alert.get("state", "firing"))
            severity = _text(alert.get("severity", "warning"))
            seq = alert.get("seq") if isinstance(alert.get("seq"), int) else None
            body = ingest.jsonable(card_data.masked_value(      # SPEC 4.4: no PAN stored
                {"v": msg.get("v"), "dev": device_id, "at": msg.get("at"), "alert": alert}))
            # An alert the device could not journal has no seq: the device's
            # time of the transition tells a resend from a new one.
            at = alert.get("at") if isinstance(alert.get("at"), int) else body.get("at")
            items.append((seq, kind, state, severity, body, at if isinstance(at, int) else None))
        # One transaction per message; duplicates are indexed checks, not scans.
        for (seq, kind, state, severity, _, _), new in zip(
                items, self.store.add_alerts(device_id, items)):
            if new:
                self.log("device_alert", device=device_id, kind=kind, state=state,
                         severity=severity)


def _text(value):
    """A short text column value (PostgreSQL TEXT cannot hold NUL)."""
    return str(value)[:64].replace("\x00", "\ufffd")


def run_service(config, stop_event=None, ready=None):
    """Run one worker until SIGTERM/SIGINT (or stop_event); return 0."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from daozhang.backend.store import open_store

    backend, broker = config["backend"], config["broker"]
    log = EventLog(backend.get("log") or None)
    store = open_store(backend["db"])
    signer = AckSigner.from_file(backend["key"])
    worker = Ingestor(store, signer, log, gap_grace_ms=int(float(backend.get("gap_grace_s", 30)) * 1000),
                      all_signatures=backend.get("all_signatures", False))
    _observe("worker", worker)
    stop = stop_event or threading.Event()
    inbox = queue.Queue()
    client_id = worker_client_id(broker, backend)
    client = paho_client(client_id, broker, manual_ack=True)
    client.reconnect_delay_set(0.2, 10)
    group = backend["share_group"]
    subs = [(topics.shared(group, leaf), 1) for leaf in topics.UP]

    def on_connect(c, u, flags, rc, props):
        if rc.is_failure:
            log("broker_refused", level="error", cause="auth: %s" % rc)
            return
        set_nodelay(c)
        c.subscribe(subs)
        log("broker_connected", client_id=client_id, session_present=flags.session_present)

    def on_disconnect(c, u, flags, rc, props):
        log("broker_lost", level="warning", cause=str(rc))

    def on_subscribe(c, u, mid, reason_codes, props):
        log("subscribed", codes=",".join(str(r) for r in reason_codes))

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_disconnect = on_disconnect
    client.on_message = lambda c, u, m: inbox.put(m)
    props = Properties(PacketTypes.CONNECT)
    # clean_start false + a session expiry (SPEC 6.10.4): what the group hands
    # this worker while it is away waits for it instead of being dropped.
    props.SessionExpiryInterval = int(broker.get("session_expiry_s", SESSION_EXPIRY_S))
    try:
        client.connect(broker["host"], int(broker["port"]), keepalive=int(broker.get("keepalive", 30)),
                       clean_start=False, properties=props)
    except (ssl.SSLError, OSError) as exc:
        # The broker may not be up yet: keep trying in the background.
        log("broker_connect_failed", level="warning", cause=str(exc))
        client.connect_async(broker["host"], int(broker["port"]),
                             keepalive=int(broker.get("keepalive", 30)), clean_start=False,
                             properties=props)
    client.loop_start()
    if stop_event is None:
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
        signal.signal(signal.SIGINT, lambda *a: stop.set())
    log("backend_ready", db=store.url, group=group, client_id=client_id)
    if ready is not None:
        ready.set()
    worker.resender = Resender(
        Outbox(store), lambda device_id, payload: client.publish(
            topics.device_topic(device_id, topics.ACKS), payload, qos=1), log,
        resend_ms=int(float(backend.get("settlement_resend_s", RESEND_MS / 1000)) * 1000),
        stall_ms=int(float(backend.get("stall_after_s", STALL_MS / 1000)) * 1000),
        # Shown by `daozhang backend alerts --findings`, once per stall.
        on_stall=lambda device_id, detail: store.add_finding(
            device_id, None, "sync_stalled", detail,
            dedup_key="sync_stalled:%s:%d" % (device_id, detail["since"])))
    last_gap_check = now_ms()
    try:
        while not stop.is_set():
            try:
                batch = [inbox.get(timeout=0.5)]
            except queue.Empty:
                batch = []
            while batch and len(batch) < MAX_GROUP:
                try:
                    batch.append(inbox.get_nowait())
                except queue.Empty:
                    break
            if batch:
                handle_group(client, worker, log, batch, _handle_group)   # one commit per group
                _observe("group", batch)
            if now_ms() - last_gap_check > 1000:
                last_gap_check = now_ms()
                try:
                    worker.check_gaps()
                except DaozhangError as exc:
                    log("gap_check_failed", level="error", error=str(exc))
                if client.is_connected():
                    try:
                        worker.resender.tick(now_ms())
                    except DaozhangError as exc:
                        log("settlement_resend_failed", level="error", error=str(exc))
    finally:
        try:
            # A clean stop ends the session (expiry 0): the group's messages go
            # to the other workers instead of waiting for this one.
            bye = Properties(PacketTypes.DISCONNECT)
            bye.SessionExpiryInterval = 0
            client.disconnect(properties=bye)
        except Exception:
            pass
        client.loop_stop()
        store.close()
        log("backend_stopped", **worker.counts)
    return 0


def _handle_group(client, worker, log, messages):
    """Receipts of one device that queued up together go in one commit."""
    groups = {}
    for message in messages:
        device_id, leaf = topics.parse(message.topic)
        if leaf == "receipts" and device_id is not None:
            groups.setdefault(device_id, []).append(message)
        else:
            _handle(client, worker, log, message)
    for device_id, group in groups.items():
        try:
            ack = worker.receipts_many(device_id, [bytes(m.payload) for m in group])
            if ack is not None:
                client.publish(topics.device_topic(device_id, topics.ACKS), ack, qos=1)
        except StorageError as exc:
            # Not committed: no PUBACK; the device resends after no ack.
            log("store_failed", level="error", device=device_id, error=str(exc))
            continue
        except DaozhangError as exc:
            log("message_failed", level="error", device=device_id, error=str(exc))
        for m in group:
            client.ack(m.mid, m.qos)


def _handle(client, worker, log, message):
    device_id, leaf = topics.parse(message.topic)
    payload = bytes(message.payload)
    try:
        if device_id is None:
            log("bad_topic", level="warning", topic=message.topic)
        elif leaf == "receipts":
            ack = worker.receipts(device_id, payload)
            if ack is not None:
                client.publish(topics.device_topic(device_id, topics.ACKS), ack, qos=1)
        elif leaf == "alerts":
            worker.alert(device_id, payload)
        elif leaf == "status":
            try:
                status = cbor.loads(payload) if payload else {}
                log("device_status", device=device_id, state=status.get("state") if isinstance(status, dict) else "?",
                    settle_n=status.get("settle_n") if isinstance(status, dict) else None)
            except DecodeError:
                log("device_status_malformed", level="warning", device=device_id)
                status = None
            resender = getattr(worker, "resender", None)
            if resender is not None and isinstance(status, dict):
                # SPEC 7.8.7: confirm what the terminal processed, send what is due.
                resender.on_status(device_id, status, now_ms())
    except StorageError as exc:
        # Not committed: do not PUBACK; the device resends after no ack.
        log("store_failed", level="error", device=device_id, error=str(exc))
        return
    except DaozhangError as exc:
        log("message_failed", level="error", device=device_id, error=str(exc))
    client.ack(message.mid, message.qos)
