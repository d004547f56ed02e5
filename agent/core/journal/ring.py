"""The journal's ring: where the next commit goes, what it may overwrite.

Sans-IO.  `Ring` holds the writer's state; `prepare()` turns records into a
`Commit` (the exact writes, and the results to report), the adapter performs
the writes and one fdatasync, and only then calls `apply(commit)`.  A failed
write or fsync means `apply` is never called: the state stays at the last
durable commit and nothing is reported committed (SPEC 3.6, 3.10).
Portable: CPython and MicroPython.
"""

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import JournalCorrupt, JournalFull, LocalError
from daozhang.agent.core.journal import checkpoint
from daozhang.agent.core.journal import layout
from daozhang.agent.core.journal import record
from daozhang.agent.core.journal import recovery


class SignerUnavailable(Exception):
    """Raised by a signer whose key cannot be used now (SPEC 3.7)."""


class Clock:
    """The three times every record carries (SPEC 3.4)."""

    __slots__ = ("wall_ms", "boot_id", "mono_ms")

    def __init__(self, wall_ms, boot_id, mono_ms):
        self.wall_ms = wall_ms
        self.boot_id = boot_id
        self.mono_ms = mono_ms


class Appended:
    """What a committed record's writer learns: enough for a signed receipt.

    What every record of a commit shares (the checkpoint, the batch tree)
    lives once in `_batch`; the properties read it, so a commit of n records
    does not copy it n times.
    """

    __slots__ = ("seq", "hash", "offset", "leaf_index", "_batch")

    def __init__(self, seq, rhash, offset, leaf_index=0, batch=None):
        self.seq = seq
        self.hash = rhash
        self.offset = offset
        self.leaf_index = leaf_index
        self._batch = batch

    @property
    def audit_path(self):
        # Computed on demand: only receipts need it, and the tree is shared.
        return self._batch.merkle.path(self.leaf_index)

    @property
    def leaf_count(self):
        return len(self._batch.merkle.hashes)

    @property
    def merkle(self):
        return self._batch.merkle

    @property
    def checkpoint(self):
        return self._batch.checkpoint

    @property
    def checkpoint_hash(self):
        return self._batch.head_hash

    @property
    def checkpoint_seq(self):
        return self._batch.next_seq - 1

    @property
    def checkpoint_head(self):
        return self._batch.checkpoint_head

    @property
    def checkpoint_wall_ms(self):
        return self._batch.clock.wall_ms

    @property
    def checkpoint_boot_id(self):
        return self._batch.clock.boot_id

    @property
    def checkpoint_mono_ms(self):
        return self._batch.clock.mono_ms


class _Batch:
    """What the records of one commit share, kept apart from the commit's
    write buffers so that results held by a caller do not pin them."""

    __slots__ = ("merkle", "checkpoint", "head_hash", "next_seq", "checkpoint_head", "clock")


class Commit:
    """The writes for one commit and the state it leads to once durable.

    `phases` is a list of write lists: the adapter performs each phase's
    writes, then syncs, before the next phase (SPEC 3.10).
    """

    __slots__ = ("phases", "results", "next_seq", "head_hash", "head_index", "write_pos",
                 "new_segment", "checkpoint", "outage")

    def __init__(self):
        self.phases = []
        self.results = []

    @property
    def writes(self):
        return [w for phase in self.phases for w in phase]


class Ring:
    """Writer state of one journal, rebuilt by `recover` and advanced by commits."""

    def __init__(self, geometry):
        self.geo = geometry
        self.first_seqs = [None] * geometry.segment_count   # per segment, if in use
        self.head_index = None       # segment holding the tail
        self.write_pos = None        # absolute file offset of the tail
        self.next_seq = 0
        self.head_hash = record.ZERO_HASH
        self.checkpoint = None       # payload of the newest checkpoint
        self.acked = 0
        self.released = 0
        self.outage = False
        self.recovered = None        # boot-record payload describing what recovery cut
        self.quarantine = []         # (file offset, bytes) recovery sets aside before zeroing
        self.torn_headers = []       # free segments whose header a power cut garbled (boot record)
        self._dev_item = cbor.text_item(geometry.device_id)    # encoded once for every checkpoint
        self._space_cache = None     # (key, (spare_segments(), segments_unreleased()))

    # -- recovery ---------------------------------------------------------

    def recover(self, headers, read_segment):
        """Rebuild state; return writes that must be made durable before anything else.

        `headers[i]` are segment i's first 96 bytes; `read_segment(i)` returns
        segment i's bytes (called for the head segment, and for the one
        before it or after it when those need a look).  SPEC 3.9.  Bytes the
        writes will zero are first listed in `self.quarantine` as
        (file offset, bytes): the adapter keeps them before writing.  Damage
        to committed records raises JournalDamaged and changes nothing.
        """
        geo = self.geo
        segs = recovery.in_use_segments(geo, headers)
        bad_headers = recovery.damaged_headers(geo, headers, segs)
        writes = []
        voided = []
        scan = buf = None
        while segs:
            index, first_seq, prev = segs[-1]
            buf = read_segment(index)
            scan = recovery.scan_segment(buf, index, first_seq, prev)
            if scan.tail is not None:
                break
            if geo.version >= 2:
                # Version 2 writes a segment's header only once its first commit is durable.
                raise recovery.damage_error(geo, index, (scan.stop_offset, first_seq, None,
                                                         "the segment holds no valid checkpoint"))
            if voided:
                raise JournalCorrupt("segments %d and %d both hold no valid checkpoint" % (voided[0], index))
            # Version 1: a commit that started this segment was torn; nothing in it was committed.
            cut_records, problem = recovery.classify_tail(buf, scan, first_seq, geo.align, geo.segment_offset(index))
            if problem is not None:
                raise recovery.damage_error(geo, index, problem)
            self.quarantine.append((geo.segment_offset(index), bytes(buf[:scan.dirty_end])))
            writes.append((geo.segment_offset(index), bytes(layout.SEGMENT_HEADER_SIZE)))
            voided.append(index)
            segs.pop()
            scan = None
        cut = {"cut_bytes": 0, "cut_records": 0, "cut_offset": 0, "voided_segments": voided}
        for index, first_seq, _ in segs:
            self.first_seqs[index] = first_seq
        if scan is not None:
            cut_records, problem = recovery.classify_tail(buf, scan, None, geo.align, geo.segment_offset(scan.index))
            if problem is not None:
                raise recovery.damage_error(geo, scan.index, problem)
            base = geo.segment_offset(scan.index)
            if scan.dirty_end > scan.tail:
                torn = bytes(buf[scan.tail:scan.dirty_end])
                self.quarantine.append((base + scan.tail, torn))
                writes.append((base + scan.tail, bytes(len(torn))))
                cut["cut_bytes"] = len(torn)
                cut["cut_offset"] = base + scan.tail
                cut["cut_records"] = cut_records
                cut["cut_sha256"] = record.sha256(torn)
            self.head_index = scan.index
            self.write_pos = base + scan.tail
            self.next_seq = scan.next_seq
            self.head_hash = scan.head_hash
            self._adopt_checkpoint(scan.checkpoint.payload)
        self._check_free_headers(bad_headers, read_segment)
        cut["voided_segments"] = voided + self.torn_headers
        self.recovered = cut
        return writes

    def _one_uncommitted_commit(self, frames):
        """True if `frames` are at most what is left of the next commit (its
        first sector may be garbled with the header): sequences from next_seq
        on, chained to the head where the first one survived, and no
        checkpoint but the last, covering from next_seq."""
        if not frames:
            return True
        if frames[0].seq == self.next_seq and frames[0].prev != self.head_hash:
            return False
        for i, rec in enumerate(frames):
            if rec.seq < self.next_seq:
                return False
            if rec.type == record.TYPE_CHECKPOINT and (i != len(frames) - 1
                                                       or rec.payload.get("first") != self.next_seq):
                return False
        return True

    def _check_free_headers(self, bad_headers, read_segment):
        """A free segment's header is all zeros, or - in the segment the next
        commit starts - a header write torn by a power cut over at most that
        one uncommitted commit.  Anything else is a damaged header of
        committed records (SPEC 3.9)."""
        geo = self.geo
        after_head = 0 if self.head_index is None else (self.head_index + 1) % geo.segment_count
        for index in bad_headers:
            buf = read_segment(index)
            frames = recovery.valid_frames(buf, layout.SEGMENT_HEADER_SIZE, len(buf))
            seqs = [rec.seq for rec in frames]
            # A torn write in the segment the next commit starts: the zeroing
            # of an earlier lap's header (its records all released), and/or
            # the start of a commit that never returned, in any mix.
            fresh = [rec for rec in frames if rec.seq >= self.released]
            torn_start = index == after_head and self._one_uncommitted_commit(fresh)
            if not torn_start:
                first = seqs[0] if seqs else None
                raise recovery.damage_error(geo, index, (0, first, max(seqs) if seqs else None,
                                                         "the segment header is damaged"))
            self.torn_headers.append(index)
            end = recovery._last_nonzero(buf, 0)
            if fresh:   # bytes of an uncommitted first commit: kept in place, and set aside
                self.quarantine.append((geo.segment_offset(index), bytes(buf[:end])))

    def _adopt_checkpoint(self, payload):
        self.checkpoint = payload
        self.acked = payload.get("acked", 0)
        self.released = payload.get("released", 0)
        self.outage = payload.get("state") == checkpoint.STATE_OUTAGE

    # -- space --------------------------------------------------------------

    def _segment_last_seq(self, index):
        """Last sequence in an in-use segment: the next newer segment's first - 1."""
        own = self.first_seqs[index]
        newer = [s for s in self.first_seqs if s is not None and s > own]
        if newer:
            return min(newer) - 1
        return self.next_seq - 1

    def capacity(self):
        return self.geo.segment_size - layout.SEGMENT_HEADER_SIZE

    def segments_in_use(self):
        return sum(1 for s in self.first_seqs if s is not None)

    def segments_unreleased(self, released=None):
        """Segments holding at least one record that may not be overwritten
        yet (at or above `released`, default the committed cursor): the head
        and each in-use segment whose last record is not released.  The sync
        link asks it at every step, under the journal's lock that the POS's
        commit takes too: see _space."""
        return self._space(released)[1]

    def spare_segments(self, released=None):
        """Segments besides the head that a commit could move into: never
        used, or holding only records released below `released` (default:
        the committed cursor).  The intake keeps one in reserve so that
        settlement acks, alerts and cursor commits still fit when sales have
        filled the journal."""
        return self._space(released)[0]

    def _space(self, released):
        """(spare, unreleased) segment counts for `released`: one sorted pass,
        O(S log S) in the segment count (a segment's last record is the next
        newer segment's first - 1), cached: both change only when the head
        moves to another segment or the release cursor moves."""
        released = self.released if released is None else released
        key = (self.head_index, released, self.next_seq if self.head_index is None else None)
        cached = self._space_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        used = sorted((first, index) for index, first in enumerate(self.first_seqs)
                      if first is not None)
        spare, unreleased = self.geo.segment_count - len(used), 0
        for k, (first, index) in enumerate(used):
            last = used[k + 1][0] - 1 if k + 1 < len(used) else self.next_seq - 1
            if index == self.head_index or last >= released:
                unreleased += 1
            else:
                spare += 1
        counts = (spare, unreleased)
        self._space_cache = (key, counts)
        return counts

    def _next_segment(self, released):
        """Index of the segment the next commit may start, or JournalFull."""
        n = self.geo.segment_count
        index = 0 if self.head_index is None else (self.head_index + 1) % n
        if self.first_seqs[index] is not None and index != self.head_index:
            last = self._segment_last_seq(index)
            if last >= released:
                raise JournalFull("journal full: segment %d holds records up to %d, released only below %d"
                                  % (index, last, released))
        return index

    # -- commits ------------------------------------------------------------

    def prepare(self, entries, clock, signer, acked=None, released=None):
        """Build the commit of `entries` [(type, payload), ...] and its checkpoint.

        `signer` has .alg, .kid and .sign(message); None or SignerUnavailable
        from .sign means a signer outage: the commit is written unsigned and
        flagged (SPEC 3.7).  `acked`/`released` move the cursors forward.
        """
        acked = self.acked if acked is None else acked
        released = self.released if released is None else released
        if not (self.released <= released <= acked <= self.next_seq + len(entries)) or acked < self.acked:
            raise LocalError("cursors must not move back or past the head: acked %d, released %d, next %d"
                             % (acked, released, self.next_seq))
        if signer is not None:
            try:
                return self._build(entries, clock, signer, acked, released)
            except SignerUnavailable:
                pass
        return self._build(entries, clock, None, acked, released)

    def _build(self, entries, clock, signer, acked, released):
        geo = self.geo
        outage = signer is None
        flags = record.FLAG_OUTAGE if outage else 0
        commit = Commit()
        seq = first = self.next_seq
        prev = self.head_hash
        times = record.times_bytes(clock.wall_ms, clock.boot_id, clock.mono_ms)
        encode = record.encode_tail
        frames = []
        hashes = []
        for rtype, payload in entries:
            if rtype == record.TYPE_CHECKPOINT:
                raise LocalError("checkpoints are written by the ring, not appended")
            frame, prev = encode(rtype, flags, seq, prev, times, payload)
            frames.append(frame)
            hashes.append(prev)
            seq += 1
        if outage:
            alg, kid, state = checkpoint.ALG_NONE, b"", checkpoint.STATE_OUTAGE
        else:
            alg, kid = signer.alg, signer.kid
            if kid is None:             # a signer whose key cannot be read now
                raise SignerUnavailable("signer has no key id")
            state = checkpoint.STATE_RECOVERY if self.outage else checkpoint.STATE_NORMAL
        body_bytes = 0
        for frame in frames:
            body_bytes += len(frame)
        start, pad, new_index = self._place(body_bytes, seq, times, kid, alg, first, acked, released, state,
                                            outage)
        if pad is not None:
            # SPEC 3.5 type 10: fills the commit to its sector's end (SPEC 3.9)
            frame, prev = encode(record.TYPE_PADDING, flags, seq, prev, times, {"pad": bytes(pad)})
            frames.append(frame)
            hashes.append(prev)
            seq += 1
        merkle = checkpoint.MerkleBatch(hashes)
        root = merkle.root()
        message, before_sig, after_sig = checkpoint.encode_parts(
            self._dev_item, seq, prev, times, kid, alg, first, root, acked, released, state)
        sig = b"" if outage else signer.sign(message)
        payload = {"alg": alg, "dev": geo.device_id, "kid": kid, "sig": sig, "root": root, "acked": acked,
                   "first": first, "state": state, "released": released}
        ck_frame, ck_hash = record.encode_frame(record.TYPE_CHECKPOINT, flags, seq, prev, times,
                                                before_sig + cbor.bytes_item(sig) + after_sig)
        frames.append(ck_frame)
        blob = b"".join(frames) if len(frames) > 1 else ck_frame
        size = len(blob)
        if (start + size) % geo.align:
            raise LocalError("commit of %d bytes at %d does not end on a %d-byte sector" % (size, start, geo.align))
        if new_index is None:
            commit.phases.append([(start, blob)])
            commit.head_index = self.head_index
            commit.new_segment = None
        else:
            commit.phases.extend(self._segment_phases(new_index, blob))
            commit.head_index = new_index
            commit.new_segment = new_index
        batch = _Batch()
        batch.merkle = merkle
        batch.checkpoint = payload
        batch.head_hash = ck_hash
        batch.next_seq = seq + 1
        batch.checkpoint_head = prev
        batch.clock = clock
        results = commit.results
        offset = start
        rseq = first
        for i in range(len(entries)):
            results.append(Appended(rseq, hashes[i], offset, i, batch))
            offset += len(frames[i])
            rseq += 1
        commit.write_pos = start + size
        commit.next_seq = seq + 1
        commit.head_hash = ck_hash
        commit.checkpoint = payload
        commit.outage = outage
        return commit

    def _segment_phases(self, index, blob):
        """The writes that start segment `index` with `blob`, each phase made
        durable before the next (SPEC 3.10): so a power cut at any point,
        with the storage persisting a phase's sectors in any order, leaves
        the old segment readable or a free segment, never a valid header over
        another lap's bytes."""
        geo = self.geo
        base = geo.segment_offset(index)
        hsize = layout.SEGMENT_HEADER_SIZE
        phases = []
        if self.first_seqs[index] is not None:
            phases.append([(base, bytes(hsize))])       # 1. the old lap's header goes: segment free
        # 2. the body: this commit, then zeros over every stale byte of an earlier lap
        phases.append([(base + hsize, blob + bytes(geo.segment_size - hsize - len(blob)))])
        # 3. the header last: the segment is in use only once its first commit is durable
        phases.append([(base, layout.encode_segment_header(index, self.next_seq, self.head_hash,
                                                           geo.journal_id))])
        return phases

    def _place(self, body_bytes, pad_seq, times, kid, alg, first, acked, released, state, outage):
        """(start offset, padding bytes or None, new segment index or None) for a
        commit of records totalling `body_bytes` followed by its checkpoint."""
        geo = self.geo
        _, before, after = checkpoint.encode_parts(self._dev_item, pad_seq, record.ZERO_HASH, times, kid, alg,
                                                   first, record.ZERO_HASH, acked, released, state)
        fixed = record.OVERHEAD + 35 + len(times)       # array head, prev item, shared times
        ck_fixed = fixed + len(before) + len(cbor.bytes_item(b"" if outage else bytes(64))) + len(after)
        pad_fixed = fixed + 6                           # {"pad": h'...'}: map head, key, bstr head
        uint = cbor.uint_bytes
        plain = body_bytes + ck_fixed + len(uint(pad_seq))
        padded_min = body_bytes + pad_fixed + len(uint(pad_seq)) + ck_fixed + len(uint(pad_seq + 1))
        align = geo.align

        def layout_at(start):
            if (start + plain) % align == 0:
                return plain, None
            target = (start + padded_min + align - 1) // align * align
            while True:
                need = target - start - padded_min
                for extra in (0, 1, 2):     # a longer bstr head for 24+ and 256+ bytes
                    k = need - extra
                    if k >= 0 and (0 if k < 24 else 1 if k < 256 else 2) == extra:
                        return target - start, k
                target += align

        if self.head_index is not None:
            seg_end = geo.segment_offset(self.head_index) + geo.segment_size
            size, pad = layout_at(self.write_pos)
            if self.write_pos + size <= seg_end:
                return self.write_pos, pad, None
        index = self._next_segment(released)
        start = geo.segment_offset(index) + layout.SEGMENT_HEADER_SIZE
        size, pad = layout_at(start)
        if size > self.capacity():
            raise LocalError("commit of %d bytes exceeds a segment's %d" % (size, self.capacity()))
        return start, pad, index

    def apply(self, commit):
        """Adopt a commit after its writes were made durable."""
        if commit.new_segment is not None:
            self.first_seqs[commit.new_segment] = self.next_seq
        self.head_index = commit.head_index
        self.write_pos = commit.write_pos
        self.next_seq = commit.next_seq
        self.head_hash = commit.head_hash
        self._adopt_checkpoint(commit.checkpoint)
