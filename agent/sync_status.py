"""`daozhang agent status` data: the running agent's sync status file plus
a read-only look at the journal (never a write: the agent may be running).

Backlog depth, age of the oldest unacknowledged record, reconnects and
rejected down messages (SPEC 6.8).
"""

import json
import os
import time

from daozhang.agent.core.errors import DecodeError
from daozhang.agent.core.journal import layout, record
from daozhang.agent.core.journal.ring import Ring
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.agent.storage import FileStorage
from daozhang.agent.ack_anchor import load_anchor
from daozhang.agent.frame_reader import FrameReader


class _ReadOnlyJournal:
    """Just enough of JournalFile for FrameReader, over a read-only recovery."""

    def __init__(self, path):
        self.storage = FileStorage(path, readonly=True)
        self.geo = layout.decode_superblock(self.storage.pread(0, layout.SUPERBLOCK_SIZE))
        geo = self.geo
        headers = [self.storage.pread(geo.segment_offset(i), layout.SEGMENT_HEADER_SIZE)
                   for i in range(geo.segment_count)]
        self.ring = Ring(geo)
        # The fixes recovery would write are ignored: we only look.
        self.ring.recover(headers, lambda i: self.storage.pread(geo.segment_offset(i), geo.segment_size))

    def snapshot(self):
        r = self.ring
        return list(r.first_seqs), r.next_seq, r.write_pos, r.head_index

    def close(self):
        self.storage.close()


def journal_sync_view(journal_path, now_ms=None):
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    journal = _ReadOnlyJournal(journal_path)
    try:
        ring = journal.ring
        acked = ring.acked
        anchor = load_anchor(journal_path)
        if anchor is not None:
            try:
                to = msgs.cbor.loads(anchor).get("to")
                if isinstance(to, int) and ring.acked < to <= ring.next_seq:
                    acked = to
            except (DecodeError, AttributeError):
                pass
        oldest_age = None
        if acked < ring.next_seq:
            try:
                records, _, _ = FrameReader(journal).read(acked, 1)
                rec = record.decode_at(records[0][2], 0)
                oldest_age = max(0, now_ms - rec.wall_ms)
            except Exception:
                oldest_age = None
        in_use = ring.segments_in_use()
        return {"next_seq": ring.next_seq, "acked": acked, "released": ring.released,
                "backlog": ring.next_seq - acked, "oldest_unacked_age_ms": oldest_age,
                "fill": ring.segments_unreleased() / journal.geo.segment_count,
                "segments_in_use": in_use, "segments": journal.geo.segment_count}
    finally:
        journal.close()


def agent_status(agent_config_path):
    from daozhang.agent.config import load_agent_config
    from daozhang.agent.sync_plugin import status_file_path, sync_settings

    config = load_agent_config(agent_config_path)
    sync_cfg = sync_settings(config)
    status_path = status_file_path(agent_config_path, sync_cfg["sync"] if sync_cfg else None)
    out = {"device": config["device_id"], "sync_configured": sync_cfg is not None}
    out.update(journal_sync_view(config["journal"]["path"]))
    link = None
    if os.path.exists(status_path):
        with open(status_path) as f:
            link = json.load(f)
    out["link"] = link
    out["reconnects"] = link.get("reconnects", 0) if link else None
    out["rejected"] = link.get("rejected", 0) if link else None
    out["connection"] = link.get("state") if link else "unknown (no status file)"
    out["rejected_by_reason"] = link.get("rejected_by_reason", {}) if link else {}
    # SPEC 7.8.7: every settlement ack 1..settle_n processed (what the backend was told).
    out["settle_n"] = link.get("settle_n") if link else None
    out["stalled"] = link.get("stalled") if link else None
    return out
