"""Checkpoint rules of the verifier: SPEC 3.6 (first, root, cursors, signature),
3.7 (signer outages) and 3.8 (keys and rotation).

A mixin of the walk in verify.py: both of its paths (careful and fast) call
`_checkpoint` for every checkpoint they accept, with the commit it covers
collected in `self.leaves` (record hashes), `self.hole` (a covered record is
missing or damaged, so the root cannot be recomputed), and `self.flagged` /
`self.unflagged` (outage flags seen on covered records).
"""

# SPEC 3.6: exactly these keys; anything else in a checkpoint is tampering.
CHECKPOINT_KEYS = {"alg", "kid", "dev", "first", "root", "acked", "released", "state", "sig"}

from daozhang.host_tools.verify.keys import (ALG_ED25519, ALG_NONE, batch_root, checkpoint_message, key_from_raw,
                                             key_id, signature_valid)

_STATE_NORMAL, _STATE_OUTAGE, _STATE_RECOVERY = 0, 1, 2


class CheckpointRules:
    """Needs from the walk: emit(), sb, report, trusted, leaves, hole, flagged, unflagged,
    last_cp, in_outage, current_kid, pending_rotation, voided, foreign_reported,
    all_signatures, deferred_signature; the walk calls check_deferred_signature()
    before every finding it emits and at the end."""

    def note_boot(self, payload):
        cut = payload.get("cut_bytes")
        if type(cut) is int and cut > 0:
            digest = payload.get("cut_sha256")
            self.emit("RecoveryCut", None, payload.get("cut_offset"),
                      "recovery cut %d bytes (%r valid records) at this offset after a power loss or damage; "
                      "they are kept in the quarantine file beside the journal%s" % (
                          cut, payload.get("cut_records"),
                          " (sha256 %s)" % digest.hex() if type(digest) is bytes else ""))
        voided = payload.get("voided_segments")
        if type(voided) is list:
            self.voided.update(i for i in voided if type(i) is int)

    def _rotation(self, pos, seq, payload):
        key = key_from_raw(payload["pub"]) if payload["alg"] == ALG_ED25519 else None
        if key is None or key_id(payload["pub"]) != payload["kid"]:
            self.emit("BadRecordBody", seq, pos, "key rotation: alg %d, kid %s does not name a valid Ed25519 key"
                      % (payload["alg"], payload["kid"].hex()))
            return
        self.pending_rotation = (payload["kid"], key)

    def _checkpoint(self, pos, seq, value, flags, rhash):
        payload = value[5]
        head, wall_ms, boot_id, mono_ms = value[1], value[2], value[3], value[4]
        extra = set(payload) - CHECKPOINT_KEYS
        if extra:
            self.emit("BadCheckpoint", seq, pos, "checkpoint payload has keys %s beyond the spec's %s"
                      % (sorted(extra), sorted(CHECKPOINT_KEYS)))
        alg, state = payload["alg"], payload["state"]
        acked, released = payload["acked"], payload["released"]
        if payload["dev"] != self.sb.device_id and self.foreign_reported != pos:
            self.emit("ForeignRecord", seq, pos, "checkpoint names device %r, this journal is %r"
                      % (payload["dev"], self.sb.device_id))
        first = self.last_cp[0] + 1 if self.last_cp is not None else self.report.first_seq
        if self.salvage_first is not None:      # SPEC 3.14: the commit after a salvage starts at its record
            first, self.salvage_first = self.salvage_first, None
        if payload["first"] != first:
            self.emit("BadCheckpoint", seq, pos, "first %d, expected %d" % (payload["first"], first))
        elif not self.hole and len(self.leaves) == seq - first:
            root = batch_root(self.leaves)
            if root != payload["root"]:
                self.emit("BadCheckpoint", seq, pos, "root %s, computed %s over records %d..%d"
                          % (payload["root"].hex(), root.hex(), first, seq - 1))
        if not released <= acked <= seq:
            self.emit("BadCheckpoint", seq, pos, "cursors must satisfy released <= acked <= seq: %d, %d, %d"
                      % (released, acked, seq))
        elif self.last_cp is not None and (acked < self.last_cp[1] or released < self.last_cp[2]):
            self.emit("BadCheckpoint", seq, pos, "cursors moved back: acked %d -> %d, released %d -> %d"
                      % (self.last_cp[1], acked, self.last_cp[2], released))
        if state not in (_STATE_NORMAL, _STATE_OUTAGE, _STATE_RECOVERY):
            self.emit("BadCheckpoint", seq, pos, "state %d, expected 0, 1 or 2" % state)
        self._outage_rules(pos, seq, payload, flags)
        if alg == ALG_ED25519:
            self._signature(pos, seq, head, wall_ms, boot_id, mono_ms, payload)
        elif alg != ALG_NONE:
            self.emit("UnknownKey", seq, pos, "signature algorithm %d is not supported (1 = Ed25519)" % alg)
        self.last_cp = (seq, acked, released)
        self.report.checkpoints += 1
        self.report.last_checkpoint = {"seq": seq, "hash": rhash, "offset": pos, "alg": alg, "kid": payload["kid"],
                                       "state": state, "acked": acked, "released": released, "wall_ms": wall_ms}
        if alg == ALG_ED25519:
            self.report.last_signed_checkpoint = self.report.last_checkpoint
        self.leaves = []
        self.hole = self.flagged = self.unflagged = False

    def _outage_rules(self, pos, seq, payload, flags):
        """SPEC 3.7."""
        state = payload["state"]
        if payload["alg"] == ALG_NONE:
            if state != _STATE_OUTAGE or payload["kid"] or payload["sig"]:
                self.emit("UnsignedOutsideOutage", seq, pos, "unsigned checkpoint (alg 0) with state %d, kid %s, "
                          "sig of %d bytes: only a state 1 outage checkpoint may be unsigned"
                          % (state, payload["kid"].hex() or "empty", len(payload["sig"])))
            elif self.unflagged:
                self.emit("UnsignedOutsideOutage", seq, pos, "unsigned outage checkpoint covers records "
                          "not flagged as written during the outage")
        elif state == _STATE_OUTAGE:
            self.emit("BadCheckpoint", seq, pos, "state 1 (signer outage) on a signed checkpoint")
        if state != _STATE_OUTAGE and self.flagged:
            self.emit("OutageFlagMisuse", seq, pos, "records flagged as written in a signer outage are covered "
                      "by a state %d checkpoint, expected state 1" % state)
        if state == _STATE_NORMAL and self.in_outage:
            self.emit("OutageNotRecovered", seq, pos, "state 0 checkpoint right after a signer outage: "
                      "expected a state 2 (recovery) checkpoint first")
        elif state == _STATE_RECOVERY and self.in_outage is False:
            self.emit("RecoveryWithoutOutage", seq, pos, "state 2 (recovery) checkpoint after a state 0 one")
        self.in_outage = state == _STATE_OUTAGE

    def _signature(self, pos, seq, head, wall_ms, boot_id, mono_ms, payload):
        """SPEC 3.6 signature, 3.8 key rules."""
        kid = payload["kid"]
        key = self.trusted.get(kid)
        rotation = self.pending_rotation
        if key is None:
            if rotation is not None and kid == rotation[0]:
                self.emit("UnknownKey", seq, pos, "signed by the rotated-to key %s before an already trusted "
                          "key vouched for the rotation" % kid.hex())
            else:
                self.emit("UnknownKey", seq, pos, "signed by key %s, not among the trusted keys (%s)"
                          % (kid.hex(), ", ".join(k.hex() for k in self.trusted) or "none given"))
            return
        if self.current_kid is not None and kid != self.current_kid and not (rotation and kid == rotation[0]):
            self.emit("WrongKey", seq, pos, "signed by trusted key %s, but the journal's current key is %s"
                      % (kid.hex(), self.current_kid.hex()))
            return
        message = checkpoint_message(payload["dev"], seq, head, wall_ms, boot_id, mono_ms, payload)
        signed = (pos, seq, key, kid, payload["sig"], message, head)
        if rotation is None and not self.all_signatures:
            # SPEC 3.6.2: a later signature in the same chained run vouches for this
            # one; it is checked only if the run ends here (the next finding, the
            # end of the journal) or the key changes (a rotation, below).
            self.deferred_signature = signed
            self.report.signatures_vouched += 1
            self.current_kid = kid
            return
        self.deferred_signature = None     # this newer signature vouches for the one deferred
        if not self._signature_holds(*signed):
            return
        self.current_kid = kid
        if rotation is not None:
            self.trusted[rotation[0]] = rotation[1]
            self.current_kid = rotation[0]
            self.pending_rotation = None
            self.report.trusted_kids.append(rotation[0])

    def check_deferred_signature(self):
        """Check the newest signature of the chained run that ends here (SPEC 3.6.2)."""
        signed, self.deferred_signature = self.deferred_signature, None
        if signed is not None:
            self.report.signatures_vouched -= 1
            self._signature_holds(*signed)

    def _signature_holds(self, pos, seq, key, kid, sig, message, head):
        if not signature_valid(key, sig, message):
            self.emit("BadSignature", seq, pos, "Ed25519 signature (%d bytes) by key %s does not verify over "
                      "checkpoint seq %d head %s" % (len(sig), kid.hex(), seq, head.hex()[:16]))
            return False
        self.report.signatures_checked += 1
        return True
