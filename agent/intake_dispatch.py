"""Which thread commits the POS's submits (agent/intake.py): the selector
itself, or the committer thread with a batch.

Handing a submit from the selector thread (`intake-io`) to the committer
(`intake-commit`) costs a thread wake-up each way, on a shared 2-core
machine tens to hundreds of microseconds of a sale's round trip.  It buys
overlap: while the committer waits on fsync, the selector reads and decodes
the next requests, so many POS at once share commits.  One POS at a time
gains nothing from it, so:

- direct: when the selector's pass over its ready sockets yields exactly one
  submit, the committer is idle with nothing queued, the last commit was of
  one sale and quick (DIRECT_MAX_COMMIT_S), the selector commits it itself
  and answers before it reads on;
- handoff: otherwise the submits are queued and the committer takes all that
  is queued (at most BATCH_MAX) into one commit.

Never both at once: the selector is the only producer, it commits directly
only when the committer is idle with an empty queue, and the committer marks
itself idle in the same lock hold that sends its answers, so the next
request of a POS that has its answer sees it idle.  Either way
IntakeService.commit_many does the work (one commit, fdatasync, then the
receipt), so both paths give the same durable receipts.  A slow disk (a
commit above DIRECT_MAX_COMMIT_S) sends work to the committer, so a stalled
fsync does not also stall the selector's pings and deadlines.
"""

import collections
import threading
import time

from daozhang.agent.intake_conn import answer_batch

BATCH_MAX = 256              # requests one commit takes at most
DIRECT_MAX_COMMIT_S = 0.05   # a commit slower than this: the next ones go to the committer


class Dispatcher:
    """`deliver_locked(batch, answers)` is the server's: called with `lock`
    held, it sends each answer and returns True if the selector must look
    at the connections again (the committer then calls `wake`)."""

    def __init__(self, service, lock, deliver_locked, wake, log, direct=True):
        self.service = service
        self.log = log
        self.direct = direct
        self.direct_max_commit_s = DIRECT_MAX_COMMIT_S
        self._lock = lock
        self._deliver_locked = deliver_locked
        self._wake = wake
        self._work = threading.Condition(lock)
        self._queue = collections.deque()      # (conn, request) for the committer
        self._committing = False               # a batch is being committed and answered
        self._last_batch = 0
        self._last_commit_s = 0.0
        self._stopping = False
        self._thread = None
        self.direct_commits = 0                # batches committed on the selector thread
        self.handoff_commits = 0               # batches committed by the committer

    def start(self):
        self._thread = threading.Thread(target=self._commit_loop, name="intake-commit",
                                        daemon=True)
        self._thread.start()

    def stop(self):
        """The committer ends once the queue is empty (the selector has stopped)."""
        with self._lock:
            self._stopping = True
            self._work.notify_all()

    def join(self, timeout):
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def submit(self, batch):
        """The selector's submits of one pass [(conn, request)]: committed
        here and now, or queued for the committer."""
        with self._lock:
            if not self._direct_locked(len(batch)):
                self._queue.extend(batch)
                self._work.notify()
                return
            self._committing = True
        self._run(batch, direct=True)

    def _direct_locked(self, n):
        return (self.direct and n == 1 and not self._queue and not self._committing
                and self._last_batch <= 1 and self._last_commit_s < self.direct_max_commit_s)

    def _commit_loop(self):
        while True:
            with self._lock:
                self._work.wait_for(lambda: self._queue or self._stopping)
                if not self._queue:
                    return
                batch = [self._queue.popleft() for _ in range(min(BATCH_MAX, len(self._queue)))]
                self._committing = True
            if self._run(batch, direct=False):
                self._wake()

    def _run(self, batch, direct):
        """Commit and answer `batch`, then finish it (index, watchdog, log:
        after the answers, off the reply path); True: wake the selector."""
        t0 = time.monotonic()
        answers, finish = answer_batch(self.service, [request for _, request in batch], self.log)
        with self._lock:
            self._last_commit_s = time.monotonic() - t0
            self._last_batch = len(batch)
            if direct:
                self.direct_commits += 1
            else:
                self.handoff_commits += 1
            try:
                wake = self._deliver_locked(batch, answers)
            finally:
                self._committing = False
        try:
            finish()
        except Exception as exc:     # committed and answered: the index catches up at start
            self.log("intake_finish_error", level="error", error=type(exc).__name__)
        return wake
