"""The settlement watchdog's sale index on the board's flash.

The face of agent/core/settlement/sale_index.py's MemorySaleIndex (the tests
hold it to the same answers as the memory and the daemon's SQLite index,
tests/settlement/test_watchdog.py, and under MicroPython
tests/portable/test_sale_index_flash.py), with nothing per sale in RAM: a
microcontroller's heap (96 KiB) cannot hold a backlog of unsettled sales at
some 500 bytes each (docs/DESIGN.md, "The sale index on flash").

    files = DirFiles("/state/sidx")               # or MemoryFiles() in tests
    index = FlashSaleIndex(files, journal_id)
    index.cursor        # the journal seq it reflects up to; None: replay it all
    index.checkpoint(seq)                          # durable as of seq

Five files of fixed-size records (firmware/flash_records.py; opened, with
their header and hash chains, by firmware/sale_index_slots.py):

- `ent`: one slot per transaction: arrival number, flags (watched, seen,
  settled...), seq, deadline, since, its places in the three heaps, its
  hash-chain links, the chain of its settlements, the checks as a bitmask,
  and its fields as CBOR.  Freed slots are reused (a free list).
- `res`: one slot per settlement result (CBOR), chained by acquirer ref, by
  the transaction it settled (arrival order), and the unknown ones in a list.
- `can`: cancellations, original -> void/reversal.
- `heap`: three binary min-heaps of slot numbers: due (watched, not seen;
  by deadline, seq, key), floor (no settlement yet, with a seq; by seq) and
  since (every transaction; by since).
- `bkt`: the header, then hash buckets (by pos_txn_id, by terminal + rrn, by
  auth code + amount, by acquirer ref, by original), doubled when full.

Per event O(log n) file reads and writes of a slot's head (a few dozen
bytes); due(), release_floor() and expired() walk their heap best-first,
touching what they return (plus, for the floor, the expired sales not yet
pruned).  keys(), unsettled_keys() and unknown_results() (diagnostics and
the summary) scan the file.

Crash safety: the index is derived data.  Before its first change after a
checkpoint the header says "dirty" (flushed at once); checkpoint(seq)
flushes every file, then writes the header clean with the journal seq.  A
board that loses power while dirty finds the header dirty, starts the
index empty and replays the whole journal (firmware/index_replay.py); a
clean one replays the records after the cursor.  A torn write costs a
rebuild, never a committed record.  Portable: CPython and MicroPython.
"""

import struct

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import LocalError, StorageError
from daozhang.agent.core.settlement.settlement_checks import CHECKS
from daozhang.firmware.flash_records import stable_hash
from daozhang.firmware import sale_index_slots
from daozhang.firmware.sale_index_slots import (ACK, H_ACK_LIVE, H_ACK_N, M_ACK, CAN, CAN_HEAD, CAN_SIZE, E_CHECKS, E_DEADLINE,
                                                E_FIRST_RES, E_FLAGS, E_H_AUTH, E_H_KEY, E_H_RRN,
                                                E_LAST_RES, E_N, E_NEXT_AUTH, E_NEXT_KEY, E_NEXT_RRN,
                                                E_SEQ, E_SINCE, ENT, ENT_HEAD, ENT_SIZE, H_CAN_FREE,
                                                H_CAN_HW, H_CAN_LIVE, H_ENT_FREE, H_ENT_HW, H_LIVE,
                                                H_NEXT_N, H_RES_FREE, H_RES_HW, H_RES_LIVE, H_UNK_HEAD,
                                                H_UNK_TAIL, M_AUTH, M_CAN, M_KEY, M_REF, M_RRN, RES,
                                                RES_HEAD, RES_SIZE, R_AT, R_H, R_NEXT_REF,
                                                R_NEXT_TXN, R_NEXT_UNK, UNKNOWN, LIVE, WATCHED, SEEN,
                                                SETTLED, HAS_SEQ, HAS_DEADLINE, CANCELLED, _HAS_RRN,
                                                _HAS_AUTH, FlashSlots, _auth_hash, _mask, _rrn_hash)

__all__ = ("FlashSaleIndex", "H_ENT_HW")


class FlashSaleIndex(FlashSlots):
    """The sale index's face over FlashSlots (see the module's docstring)."""

    # -- entries ---------------------------------------------------------------------

    def _entry(self, slot, head):
        key, kind, time, amount, mode, txn = self._ent_body(slot, head)
        flags = head[E_FLAGS]
        refs = []
        link = head[E_FIRST_RES]
        first = None
        while link:
            rhead = self._res_head(link - 1)
            body = self._res_body(link - 1, rhead)
            if first is None:
                first = body
            refs.append(body["acquirer_ref"])
            link = rhead[R_NEXT_TXN]
        checks = [c for i, c in enumerate(CHECKS) if head[E_CHECKS] >> i & 1]
        return {"txn": tuple(txn), "pos_txn_id": key, "seq": head[E_SEQ] if flags & HAS_SEQ else None,
                "kind": kind, "time": time, "amount": amount, "mode": mode,
                "deadline": head[E_DEADLINE] if flags & HAS_DEADLINE else None,
                "cancelled": bool(flags & CANCELLED), "settlements": refs if refs else (),
                "first": first, "checks": checks if checks else ()}

    def get(self, key):
        slot, head = self._find(key)
        return None if slot is None else self._entry(slot, head)

    def add(self, entry, watched=False):
        txn = entry["txn"]
        if not isinstance(txn, tuple):
            raise LocalError("the flash sale index keeps slim transactions only (a tuple)")
        self._touch()
        key = entry["pos_txn_id"]
        body = cbor.dumps([key, entry["kind"], entry["time"], entry["amount"], entry["mode"], list(txn)])
        if len(body) > ENT_SIZE - ENT_HEAD:
            raise StorageError("transaction %s: %d bytes of fields, the flash index slot holds %d"
                               % (key, len(body), ENT_SIZE - ENT_HEAD))
        slot = self._alloc(H_ENT_HW, H_ENT_FREE, self._ent_head, E_NEXT_KEY)
        seq, deadline = entry["seq"], entry["deadline"]
        flags = LIVE | (HAS_SEQ if seq is not None else 0) | (HAS_DEADLINE if deadline is not None else 0)
        flags |= (CANCELLED if entry["cancelled"] else 0) | (SETTLED if entry["first"] is not None else 0)
        flags |= WATCHED if watched else 0      # as watch(entry) right after: one head write
        terminal_id, rrn, auth_code, amount = txn[0], txn[1], txn[2], txn[3]
        flags |= (_HAS_RRN if rrn else 0) | (_HAS_AUTH if auth_code else 0)
        since = deadline if deadline is not None else entry["time"]
        head = [self.h[H_NEXT_N], flags, seq or 0, deadline or 0, since, 0, 0, 0, 0, 0, 0, 0, 0,
                stable_hash(key), _rrn_hash(terminal_id, rrn) if rrn else 0,
                _auth_hash(auth_code, amount) if auth_code else 0, _mask(entry["checks"]), len(body)]
        self.h[H_NEXT_N] += 1
        self._chain_in(slot, head)
        self.ent.write(slot, struct.pack(ENT, *head) + body)
        self.h[H_LIVE] += 1
        self.heaps.push(2, slot)
        if flags & HAS_SEQ and not flags & SETTLED:
            self.heaps.push(1, slot)
        if watched:
            self.heaps.push(0, slot)
        self._grow()

    def save(self, entry):
        slot, head = self._find(entry["pos_txn_id"])
        if slot is None:
            return
        self._touch()
        flags = head[E_FLAGS] & ~(CANCELLED | SETTLED)
        flags |= (CANCELLED if entry["cancelled"] else 0) | (SETTLED if entry["first"] is not None else 0)
        head[E_FLAGS] = flags
        head[E_CHECKS] = _mask(entry["checks"])
        self._put_ent_head(slot, head)
        if flags & SETTLED and self.heaps.holds(1, head):
            self.heaps.remove(1, slot)

    def _matching(self, m, h, field, hfield, test):
        found = []
        for slot, head in self._ent_chain(m, h, field, hfield):
            if head[E_FLAGS] & LIVE:
                txn = self._ent_body(slot, head)[5]
                if test(txn):
                    found.append((head[E_N], slot, head))
        found.sort()
        return [self._entry(slot, head) for _, slot, head in found]

    def by_rrn_of(self, terminal_id, rrn):
        if not rrn:
            return []
        return self._matching(M_RRN, _rrn_hash(terminal_id, rrn), E_NEXT_RRN, E_H_RRN,
                              lambda t: t[0] == terminal_id and t[1] == rrn)

    def by_auth_of(self, auth_code, amount):
        if not auth_code:
            return []
        return self._matching(M_AUTH, _auth_hash(auth_code, amount), E_NEXT_AUTH, E_H_AUTH,
                              lambda t: t[2] == auth_code and t[3] == amount)

    def _live_slots(self):
        """(arrival number, slot, head) of every live entry, in arrival order (a scan)."""
        out = []
        for slot in range(self.h[H_ENT_HW]):
            head = self._ent_head(slot)
            if head[E_FLAGS] & LIVE:
                out.append((head[E_N], slot, head))
        out.sort()
        return out

    def keys(self):
        return [self.ent_key(slot, head) for _, slot, head in self._live_slots()]

    def count(self):
        return self.h[H_LIVE]

    # -- results ---------------------------------------------------------------------

    def result(self, ref):
        return self._find_res(ref)[2]

    def add_result(self, result, matched):
        self._touch()
        body = cbor.dumps(result)
        if len(body) > RES_SIZE - RES_HEAD:
            raise StorageError("settlement %s: %d bytes, the flash index slot holds %d"
                               % (result["acquirer_ref"], len(body), RES_SIZE - RES_HEAD))
        slot = self._alloc(H_RES_HW, H_RES_FREE, self._res_head, R_NEXT_REF)
        h = stable_hash(result["acquirer_ref"])
        head = [1, LIVE | (0 if matched else UNKNOWN), self._push_link(M_REF, h, slot), 0, 0, h,
                result["settled_at"], len(body)]
        self.res.write(slot, struct.pack(RES, *head) + body)
        self.h[H_RES_LIVE] += 1
        if matched:
            eslot, ehead = self._find(result["pos_txn_id"])
            if ehead[E_LAST_RES]:
                last = self._res_head(ehead[E_LAST_RES] - 1)
                last[R_NEXT_TXN] = slot + 1
                self._put_res_head(ehead[E_LAST_RES] - 1, last)
            else:
                ehead[E_FIRST_RES] = slot + 1
            ehead[E_LAST_RES] = slot + 1
            self._put_ent_head(eslot, ehead)
        else:
            tail = self.h[H_UNK_TAIL]
            if tail:
                thead = self._res_head(tail - 1)
                thead[R_NEXT_UNK] = slot + 1
                self._put_res_head(tail - 1, thead)
            else:
                self.h[H_UNK_HEAD] = slot + 1
            self.h[H_UNK_TAIL] = slot + 1
        self._grow()

    def unknown_results(self):
        out = []
        link = self.h[H_UNK_HEAD]
        while link:
            head = self._res_head(link - 1)
            out.append(self._res_body(link - 1, head))
            link = head[R_NEXT_UNK]
        return out

    def _free_res(self, slot, head):
        self._unlink(M_REF, head[R_H], slot, self._res_head, self._put_res_head, R_NEXT_REF)
        self._put_res_head(slot, [0, 0, self.h[H_RES_FREE], 0, 0, 0, 0, 0])
        self.h[H_RES_FREE] = slot + 1
        self.h[H_RES_LIVE] -= 1

    def cancellation(self, original):
        body = self._find_can(original)[2]
        return None if body is None else body[1]

    def set_cancellation(self, original, key):
        self._touch()
        slot, head, _ = self._find_can(original)
        body = cbor.dumps([original, key])
        if len(body) > CAN_SIZE - CAN_HEAD:
            raise StorageError("cancellation of %s: %d bytes, the flash index slot holds %d"
                               % (original, len(body), CAN_SIZE - CAN_HEAD))
        if slot is None:
            slot = self._alloc(H_CAN_HW, H_CAN_FREE, self._can_head, 1)
            h = stable_hash(original)
            head = [LIVE, self._push_link(M_CAN, h, slot), h, 0]
            self.h[H_CAN_LIVE] += 1
        head[3] = len(body)
        self.can.write(slot, struct.pack(CAN, *head) + body)
        self._grow()

    def _drop_cancellation(self, original, key):
        slot, head, body = self._find_can(original)
        if slot is None or body[1] != key:
            return
        self._unlink(M_CAN, head[2], slot, self._can_head,
                     lambda s, hd: self.can.write(s, struct.pack(CAN, *hd)), 1)
        self.can.write(slot, struct.pack(CAN, 0, self.h[H_CAN_FREE], 0, 0))
        self.h[H_CAN_FREE] = slot + 1
        self.h[H_CAN_LIVE] -= 1

    def forget(self, keys, unknown_before=None):
        for key in keys:
            slot, head = self._find(key)
            if slot is None:
                continue
            self._touch()
            link = head[E_FIRST_RES]
            while link:
                rhead = self._res_head(link - 1)
                nxt = rhead[R_NEXT_TXN]
                self._free_res(link - 1, rhead)
                link = nxt
            original = self._ent_body(slot, head)[5][5]
            if original:
                self._drop_cancellation(original, key)
            for which in (0, 1, 2):
                if self.heaps.holds(which, head):
                    self.heaps.remove(which, slot)
                    head = self._ent_head(slot)
            self._unlink(M_KEY, head[E_H_KEY], slot, self._ent_head, self._put_ent_head, E_NEXT_KEY)
            if head[E_FLAGS] & _HAS_RRN:
                self._unlink(M_RRN, head[E_H_RRN], slot, self._ent_head, self._put_ent_head, E_NEXT_RRN)
            if head[E_FLAGS] & _HAS_AUTH:
                self._unlink(M_AUTH, head[E_H_AUTH], slot, self._ent_head, self._put_ent_head, E_NEXT_AUTH)
            free = [0] * 18
            free[E_NEXT_KEY] = self.h[H_ENT_FREE]
            self._put_ent_head(slot, free)
            self.h[H_ENT_FREE] = slot + 1
            self.h[H_LIVE] -= 1
        if unknown_before is not None:
            self._forget_unknown(unknown_before)

    def _forget_unknown(self, before):
        prev = 0
        link = self.h[H_UNK_HEAD]
        while link:
            head = self._res_head(link - 1)
            nxt = head[R_NEXT_UNK]
            if head[R_AT] < before:
                self._touch()
                if prev:
                    phead = self._res_head(prev - 1)
                    phead[R_NEXT_UNK] = nxt
                    self._put_res_head(prev - 1, phead)
                else:
                    self.h[H_UNK_HEAD] = nxt
                if self.h[H_UNK_TAIL] == link:
                    self.h[H_UNK_TAIL] = prev
                self._free_res(link - 1, head)
            else:
                prev = link
            link = nxt

    # -- the watchdog's --------------------------------------------------------------

    def watch(self, entry):
        slot, head = self._find(entry["pos_txn_id"])
        if slot is None or head[E_FLAGS] & WATCHED:
            return
        self._touch()
        head[E_FLAGS] |= WATCHED
        self._put_ent_head(slot, head)
        if not head[E_FLAGS] & SEEN:
            self.heaps.push(0, slot)

    def unwatch(self, key):
        slot, head = self._find(key)
        if slot is None or not head[E_FLAGS] & WATCHED:
            return False
        self._touch()
        if self.heaps.holds(0, head):
            self.heaps.remove(0, slot)
            head = self._ent_head(slot)
        head[E_FLAGS] &= ~(WATCHED | SEEN)
        self._put_ent_head(slot, head)
        return True

    def watched_deadline(self, key):
        slot, head = self._find(key)
        if slot is None or not head[E_FLAGS] & WATCHED:
            return None
        return head[E_DEADLINE] if head[E_FLAGS] & HAS_DEADLINE else None

    def due(self, now, limit):
        out = []
        for slot, head in self.heaps.walk(0, lambda hd: hd[E_DEADLINE] < now):
            if len(out) >= limit:
                break
            body = self._ent_body(slot, head)
            out.append((head[E_DEADLINE], head[E_SEQ], body[0], body[3]))
        return out

    def mark_seen(self, key):
        slot, head = self._find(key)
        if slot is None:
            return
        self._touch()
        if self.heaps.holds(0, head):
            self.heaps.remove(0, slot)
            head = self._ent_head(slot)
        head[E_FLAGS] |= SEEN
        self._put_ent_head(slot, head)

    def unsettled_keys(self):
        return sorted(self.ent_key(slot, head) for _, slot, head in self._live_slots()
                      if head[E_FLAGS] & WATCHED)

    def expired(self, before):
        found = [(head[E_N], slot, head) for slot, head in self.heaps.walk(2, lambda hd: hd[E_SINCE] < before)]
        found.sort()
        return [self.ent_key(slot, head) for _, slot, head in found]

    def release_floor(self, trusted_now, expire_after):
        for slot, head in self.heaps.walk(1, lambda hd: True):
            if trusted_now is None or head[E_SINCE] >= trusted_now - expire_after:
                return head[E_SEQ]
        return None


    # -- settlement-ack ids seen: the replay guard ----------------------------------

    def ack_digest(self, ack_id):
        """SHA-256 of the ack's bytes when its id was seen (among the last ACK_RING), else None."""
        ack_id = bytes(ack_id)
        h = _id_hash(ack_id)
        link = self._chain_head(M_ACK, h)
        while link:
            head = self._ack_head(link - 1)
            if head[0] & LIVE and head[2] == h and head[3] == ack_id:
                return head[4]
            link = head[1]
        return None

    def put_ack(self, ack_id, digest, at):
        """Remember an accepted ack; the oldest of a full ring goes."""
        self._touch()
        ring = sale_index_slots.ACK_RING
        slot = self.h[H_ACK_N] % ring
        if self.h[H_ACK_N] >= ring:
            old = self._ack_head(slot)
            if old[0] & LIVE:
                self._unlink(M_ACK, old[2], slot, self._ack_head,
                             lambda s, hd: self.acks.write(s, struct.pack(ACK, *hd)), 1)
        h = _id_hash(bytes(ack_id))
        self.acks.write(slot, struct.pack(ACK, LIVE, self._push_link(M_ACK, h, slot), h, bytes(ack_id),
                                          bytes(digest), at))
        self.h[H_ACK_N] += 1
        self.h[H_ACK_LIVE] = min(self.h[H_ACK_N], ring)
        self._grow()


def _id_hash(ack_id):
    import hashlib
    return int.from_bytes(hashlib.sha256(ack_id).digest()[:4], "little")
