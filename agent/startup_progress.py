"""Tell systemd that a long start-up is still making progress.

The first start on a journal without its index files (an upgrade, or the
files deleted) walks the whole journal: about 100 s for a million records
here, several times that on a Raspberry Pi, well past the unit's
TimeoutStartSec.  systemd would kill the agent and start it again, and
again.  Instead, while records are being indexed, the agent asks for more
time (EXTEND_TIMEOUT_USEC, systemd >= 236) and says how far it is (STATUS),
so a stalled start still times out and a progressing one does not.
"""

import time

from daozhang.agent import sd_notify

CHECK_EVERY = 5000          # records between clock reads
NOTIFY_EVERY_S = 5.0        # at most one notification this often
EXTEND_BY_S = 60            # each one buys this much more time


class StartupProgress:
    def __init__(self, what, log=None, notify=sd_notify.notify, clock=time.monotonic):
        self.what = what
        self.log = log or (lambda event, level="info", **fields: None)
        self.notify = notify
        self.clock = clock
        self.count = 0
        self._last = None

    def record(self, seq):
        """Call once per record indexed."""
        self.count += 1
        if self.count % CHECK_EVERY:
            return
        now = self.clock()
        if self._last is not None and now - self._last < NOTIFY_EVERY_S:
            return
        self._last = now
        self.notify("EXTEND_TIMEOUT_USEC=%d\nSTATUS=indexing the journal (%s): %d records, at seq %d"
                    % (EXTEND_BY_S * 1000000, self.what, self.count, seq))
        self.log("index_progress", what=self.what, records=self.count, seq=seq)
