"""A sync that cannot stall silently (docs/SPEC.md 6.12).  Portable: CPython
and MicroPython; no clock of its own (`now` comes in).

The sync link may be up and still move nothing: its backlog cannot be read
(a damaged or misread journal), the broker refuses its publishes, or no
backend acks them.  Retries go on, forever, but somebody must hear of it.
`StallWatch.observe(now, online, acked, next_seq, problem)` is called at
every step of the link; it returns an action when the verdict changes:

- ("stalled", reason, detail): the link has been online for `stall_after_ms`
  with records waiting and `acked` has not moved all that time.  reason is
  `read_failed` or `publish_refused` when the link reported such a problem
  in that time (the last one is the detail), else `no_ack`;
- ("moving", None, detail): acked moved again, or nothing waits any more.

Offline time does not count: the backlog of a terminal without a link is
`sync_backlog`'s business, and the clock starts again on reconnect.
"""

NO_ACK = "no_ack"
READ_FAILED = "read_failed"
PUBLISH_REFUSED = "publish_refused"
DEFAULT_STALL_AFTER_MS = 120000


class StallWatch:
    def __init__(self, stall_after_ms=DEFAULT_STALL_AFTER_MS):
        if type(stall_after_ms) is not int or stall_after_ms <= 0:
            raise ValueError("stall_after_ms must be a positive integer, got %r" % (stall_after_ms,))
        self.stall_after_ms = stall_after_ms
        self.since = None           # when this stretch without progress began (online, waiting)
        self.acked = None
        self.problem = None         # (reason, detail) seen in this stretch
        self.stalled = None         # the reason, while stalled
        self.why = None             # its detail

    def observe(self, now, online, acked, next_seq, problem=None):
        """`problem`: (reason, detail) the link hit at this step, or None."""
        waiting = acked < next_seq
        moved = self.acked is not None and acked > self.acked
        self.acked = acked
        if moved or not waiting:
            self.since = None
            self.problem = None
            if self.stalled is not None:
                self.stalled = None
                return ("moving", None, {"acked": acked, "next_seq": next_seq})
            return None
        if not online:
            self.since = None       # the clock restarts on reconnect
            return None
        if problem is not None:
            self.problem = problem
        if self.since is None:
            self.since = now
            return None
        if self.stalled is None and now - self.since >= self.stall_after_ms:
            reason, detail = self.problem if self.problem is not None else (NO_ACK, None)
            self.stalled = reason
            self.why = detail
            return ("stalled", reason, {"reason": reason, "detail": detail, "acked": acked,
                                        "next_seq": next_seq, "since": self.since})
        return None

    def state(self):
        """For `agent status`: None, or {"reason", "since", "why"}."""
        if self.stalled is None:
            return None
        return {"reason": self.stalled, "since": self.since, "why": self.why}
