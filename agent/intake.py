"""The POS intake socket: a Unix stream socket, one selector thread for every
POS connection and one committer thread that journals a batch per commit.

The selector thread (`intake-io`) accepts, reads, decodes frames
(agent/core/intake/intake_frames.py, sans-IO), answers pings and malformed
requests itself, keeps every deadline, and gives each pass's submits to the
Dispatcher (agent/intake_dispatch.py): a lone sale while the committer is
idle is committed on this thread (no hand-off on its round trip); else the
committer (`intake-commit`) takes all that is queued into one
IntakeService.commit_many (one commit, one fsync).  Either sends each answer
straight back (non-blocking; what does not fit waits for the selector).  One
request per connection is in flight at a time: answered in order.
What can go wrong and what happens (SPEC 5.2):

- a frame with no JSON object, a bad envelope: an error response, the
  connection stays open; a frame length of 0 or above the limit: an error
  response, then close;
- a frame not wholly received `frame_timeout` seconds after its first byte
  (a deadline per frame, not per read: a client trickling one byte every few
  seconds is closed all the same), or whose client closes: close; nothing of
  it was journaled (only a whole, validated frame is);
- a connection idle (between frames) for `idle_timeout` seconds: closed;
- all slots taken (MAX_CONNECTIONS), or the client's uid (SO_PEERCRED)
  holding `max_per_identity`: the connection idle the longest (of that uid,
  at its cap) is closed to make room; only when none is idle (each mid-frame,
  bounded by its frame deadline) is the newcomer refused `busy`.  So idle
  clients never lock out the POS, nor another user's take more than a share;
- a client that vanishes before its response, or does not read it within
  `frame_timeout`: the transaction stays committed (resubmitting it returns
  the same receipt), the send error is logged, the connection is closed;
- anything unexpected inside: an `internal_error` response and a log line.
"""

import os
import selectors
import socket
import threading
import time

from daozhang.agent.core.intake import intake_frames as frames
from daozhang.agent.intake_conn import Conn, bind_listener, peer_creds, refuse_busy
from daozhang.agent.intake_dispatch import Dispatcher

MAX_CONNECTIONS = 256
MAX_PER_IDENTITY = 64      # connections one uid may hold (SO_PEERCRED)
RECV_SIZE = 65536


class IntakeServer:
    def __init__(self, service, path, mode=0o660, group=None, log=None,
                 idle_timeout=300.0, frame_timeout=10.0, max_frame=frames.MAX_FRAME,
                 max_connections=MAX_CONNECTIONS, max_per_identity=MAX_PER_IDENTITY,
                 direct=True):
        self.service = service
        self.path = path
        self.mode = mode
        self.group = group
        self.log = log or (lambda event, **fields: None)
        self.idle_timeout = idle_timeout
        self.frame_timeout = frame_timeout
        self.max_frame = max_frame
        self.max_connections = max_connections
        self.max_per_identity = max_per_identity
        self._listener = None
        self._lock = threading.Lock()  # _conns, their out/inflight/closed, _resume, the queue
        self._conns = {}           # socket -> Conn
        self._resume = set()       # connections the selector must look at again
        self._round = []           # this pass's submits (selector thread only)
        # `direct=False`: every submit goes to the committer (tests pin each path).
        self.dispatcher = Dispatcher(service, self._lock, self._deliver_locked, self._wake,
                                     self.log, direct=direct)
        self._gone = threading.Condition(self._lock)   # a connection closed
        self._selector = None
        self._wake_r = self._wake_w = None
        self._io_thread = None
        self._recheck_at = 0.0     # the next deadline pass (_housekeep)
        self._shortest = min(frame_timeout, idle_timeout)
        self._stop_accept = False
        self._accept_stopped = threading.Event()
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------

    def start(self):
        self._listener = listener = bind_listener(self.path, self.mode, self.group)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._io_thread = threading.Thread(target=self._io_loop, name="intake-io", daemon=True)
        self.dispatcher.start()
        self._io_thread.start()
        self.log("intake_listening", socket=self.path, mode="%04o" % self.mode,
                 group=self.group or "-")

    def stop_accepting(self):
        """Close the listening socket: no new connections (SIGTERM, step 1)."""
        self._stop_accept = True
        self._wake()
        if self._io_thread is not None and self._io_thread.is_alive():
            self._accept_stopped.wait(5)
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def drain(self, timeout):
        """Stop reading new requests; answer the ones in flight (SIGTERM, step 2).

        SHUT_RD ends each connection's reading; a request already read is
        still answered (the write side stays open).  Returns how many
        connections are still open after `timeout` seconds; then the
        selector and the committer stop.
        """
        with self._lock:
            conns = list(self._conns)
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        with self._lock:
            self._gone.wait_for(lambda: not self._conns, timeout)
            left = len(self._conns)
            self._stopping = True
        self._wake()
        alive = False
        if self._io_thread is not None:
            self._io_thread.join(5)     # first: it may still hand the committer a batch
            alive = self._io_thread.is_alive()
        self.dispatcher.stop()
        alive = not self.dispatcher.join(5) or alive
        if not alive and self._wake_w is not None:
            # Only now: a write to a closed, reused descriptor would land elsewhere.
            wake_w, self._wake_w = self._wake_w, None
            os.close(wake_w)
            os.close(self._wake_r)
        return left

    @property
    def connections(self):
        with self._lock:
            return len(self._conns)

    def _wake(self):
        if self._wake_w is None:
            return
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass      # a wake is already pending (or we are closed): enough

    # -- the selector thread -------------------------------------------------------

    def _io_loop(self):
        try:
            while not self._stopping:
                timeout = self._housekeep()
                # Submits left from the last pass: look for more without waiting.
                events = self._selector.select(0 if self._round else timeout)
                for key, mask in events:
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        self._guarded(key.data, self._on_ready, key.data, mask)
                if self._stop_accept and self._listener is not None:
                    self._close_listener()
                self._resume_pending()
                self._dispatch()
                self._resume_pending()      # answered here: next frames, closes
        finally:
            self._shutdown_io()

    def _guarded(self, conn, fn, *args):
        try:
            fn(*args)
        except Exception as exc:   # the daemon must outlive any one connection
            self.log("intake_connection_error", level="error", pid=conn.pid,
                     error=type(exc).__name__)
            self._close(conn)

    def _drain_wake(self):
        try:
            os.read(self._wake_r, 65536)    # the pipe never holds more: wakes are one byte
        except BlockingIOError:
            pass

    def _close_listener(self):
        listener, self._listener = self._listener, None
        self._selector.unregister(listener)
        try:
            listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        listener.close()
        self._accept_stopped.set()

    def _shutdown_io(self):
        if self._listener is not None:
            self._close_listener()
        self._accept_stopped.set()
        with self._lock:
            conns = list(self._conns.values())
        for conn in conns:
            self._close(conn)
        self._selector.close()

    def _accept(self):
        while self._listener is not None:
            try:
                sock, _ = self._listener.accept()
            except OSError:      # BlockingIOError: none left
                return
            pid, uid = peer_creds(sock)
            with self._lock:
                room = self._make_room_locked(uid)
                if room:
                    sock.setblocking(False)
                    conn = Conn(sock, pid, uid, self.max_frame)
                    self._conns[sock] = conn
            if not room:
                refuse_busy(sock, "too many POS connections (limit %d, %d per user), none idle"
                            % (self.max_connections, self.max_per_identity))
                self.log("intake_busy", level="warning", limit=self.max_connections, uid=uid)
                continue
            self._selector.register(sock, selectors.EVENT_READ, conn)
            conn.events = selectors.EVENT_READ

    def _make_room_locked(self, uid):
        """True if a new connection of `uid` may be served, closing the
        longest-idle connection (of `uid` when it is at its own cap) if that
        makes room.  O(connections), bounded by max_connections."""
        mine = [c for c in self._conns.values() if c.uid == uid and not c.evicted] \
            if uid is not None else []
        if uid is not None and len(mine) >= self.max_per_identity:
            return self._evict_idlest_locked(mine, "identity")
        live = [c for c in self._conns.values() if not c.evicted]
        if len(live) >= self.max_connections:
            return self._evict_idlest_locked(live, "full")
        return True

    def _evict_idlest_locked(self, candidates, why):
        idle = [c for c in candidates if c.idle_since is not None]
        if not idle:
            return False
        victim = min(idle, key=lambda c: c.idle_since)
        victim.evicted = True
        try:
            # The selector reads end-of-stream and closes it; a request it has
            # already read is still answered (the write side stays open).
            victim.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        self.log("intake_evicted_idle", level="warning", pid=victim.pid, uid=victim.uid,
                 reason=why)
        return True

    def _on_ready(self, conn, mask):
        if conn.closed:
            return
        if mask & selectors.EVENT_WRITE:
            self._flush_out(conn)
        if mask & selectors.EVENT_READ and not conn.closed:
            try:
                data = conn.sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if data:
                conn.idle_since = None
            else:
                conn.eof = True
            conn.decoder.receive_data(data)
            if not data:
                self._set_reading(conn, False)
            elif (conn.inflight or conn.out) and conn.decoder.buffered > self.max_frame + frames.HEADER:
                conn.paused = True               # the next frames wait in the kernel
                self._set_reading(conn, False)
            self._process(conn)

    def _process(self, conn):
        """Decode what conn has buffered: answer pings and errors here, hand
        a submit to the committer (then wait for its answer before the next)."""
        decoder = conn.decoder
        if decoder.state == frames.ERROR:       # a fatal frame error was answered
            self._finish(conn)
            return
        while not conn.inflight and not conn.closed and not conn.out:
            try:
                event = decoder.next_event()
            except frames.FrameError as exc:
                self.log("intake_bad_frame", level="warning", pid=conn.pid, code=exc.code)
                self._send(conn, frames.error_response(None, exc.code, str(exc)))
                self._finish(conn)
                return
            if event == frames.CLOSED:
                self._finish(conn)
                return
            if event == frames.NEED_DATA:
                if decoder.buffered:
                    # Inside a frame the POS must finish it within frame_timeout
                    # of its first byte, however it spreads the bytes.
                    if conn.frame_deadline is None:
                        conn.frame_deadline = time.monotonic() + self.frame_timeout
                else:
                    conn.frame_deadline = None
                    if conn.idle_since is None:
                        conn.idle_since = time.monotonic()
                return
            conn.frame_deadline = None
            request = self._parse(event, conn.pid)
            if not isinstance(request, frames.Request):
                self._answered(conn, request)
                continue
            with self._lock:
                conn.inflight = True
            self._round.append((conn, request))

    def _parse(self, message, pid):
        """A Request to submit, or the answer bytes (a ping, a bad request)."""
        try:
            request = frames.parse_request(message)
        except frames.FrameError as exc:
            self.log("intake_bad_request", level="warning", pid=pid, code=exc.code)
            return frames.error_response(exc.request_id, exc.code, str(exc))
        if request.op == "ping":
            return frames.ok_response(request.id, {"pong": True, "dev": self.service.dev})
        return request

    def _answered(self, conn, answer):
        if not conn.decoder.buffered:   # idle before the answer leaves: a client
            conn.idle_since = time.monotonic()   # that has its answer is seen idle
        self._send(conn, answer)

    def _finish(self, conn):
        """No more requests: close once the answers in flight are out."""
        conn.eof = True
        self._set_reading(conn, False)
        with self._lock:
            done = not conn.inflight and not conn.out
        if done:
            self._close(conn)

    def _set_reading(self, conn, on):
        if conn.closed:
            return
        events = (selectors.EVENT_READ if on else 0) | (selectors.EVENT_WRITE if conn.out else 0)
        if events == conn.events:
            return          # no system call when nothing changes (the usual answer)
        conn.events = events
        try:
            if events:
                self._selector.modify(conn.sock, events, conn)
            else:
                self._selector.unregister(conn.sock)
        except KeyError:
            if events:
                self._selector.register(conn.sock, events, conn)

    def _resume_pending(self):
        with self._lock:
            if not self._resume:
                return
            conns, self._resume = self._resume, set()
        for conn in conns:
            if not conn.closed:
                self._guarded(conn, self._resume_one, conn)

    def _resume_one(self, conn):
        """conn was answered, its answer did not fit the socket, or the send failed."""
        with self._lock:
            busy, broken = conn.inflight, conn.broken
        if broken:
            self._close(conn)
            return
        if not busy and not conn.out:
            conn.paused = False
        self._set_reading(conn, not conn.eof and not conn.paused)
        if not busy:
            self._process(conn)       # the next frame already buffered, or end-of-stream

    def _expire(self, now):
        """Close connections past a deadline.  O(connections), bounded."""
        with self._lock:
            conns = list(self._conns.values())
        for conn in conns:
            why = conn.expired(now, self.idle_timeout)
            if why == "send":
                self.log("intake_client_gone", level="warning", pid=conn.pid, error="send_timeout")
            elif why == "frame":
                self.log("intake_frame_timeout", level="warning", pid=conn.pid,
                         buffered=conn.decoder.buffered)
            if why is not None:
                self._close(conn)

    def _housekeep(self):
        """Close connections past a deadline; seconds the selector may wait.
        The O(connections) pass runs only once one may be due: a deadline set
        since the last pass is at least the shorter timeout after it."""
        now = time.monotonic()
        if now >= self._recheck_at:
            self._expire(now)
            with self._lock:
                soonest = min((c.deadline(self.idle_timeout) for c in self._conns.values()),
                              default=now + self._shortest)
            self._recheck_at = min(soonest, now + self._shortest)
        if self._stop_accept and self._listener is not None:
            return 0
        return max(0.0, self._recheck_at - now)

    def _close(self, conn):
        with self._lock:
            if conn.closed:
                return
            conn.closed = True
            self._conns.pop(conn.sock, None)
            self._gone.notify_all()
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    # -- sending (both threads) ------------------------------------------------------

    def _send(self, conn, data):
        with self._lock:
            self._send_locked(conn, data)

    def _send_locked(self, conn, data):
        """Send now what the socket takes; the selector sends the rest."""
        if conn.closed or conn.broken:
            return
        if not conn.out:
            try:
                sent = conn.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self.log("intake_client_gone", level="warning", pid=conn.pid,
                         error=type(exc).__name__)
                conn.broken = True
                self._resume.add(conn)
                return
            if sent == len(data):
                return
            data = data[sent:]
        conn.out += data
        if conn.send_deadline is None:
            conn.send_deadline = time.monotonic() + self.frame_timeout
        self._resume.add(conn)

    def _flush_out(self, conn):
        with self._lock:
            try:
                sent = conn.sock.send(conn.out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.log("intake_client_gone", level="warning", pid=conn.pid,
                         error=type(exc).__name__)
                conn.broken = True
                sent = 0
            del conn.out[:sent]
            if not conn.out:
                conn.send_deadline = None
        if conn.broken or not conn.out:
            self._resume_one(conn)

    # -- committing (agent/intake_dispatch.py) ----------------------------------------

    def _dispatch(self):
        """This pass's submits to the dispatcher (which may commit them here)."""
        if not self._round:
            return
        batch, self._round = self._round, []
        try:
            self.dispatcher.submit(batch)
        except Exception as exc:    # answered by answer_batch; this is a bug: keep serving
            self.log("intake_internal_error", level="error", error=type(exc).__name__)
            for conn, _ in batch:
                self._close(conn)

    def _deliver_locked(self, batch, answers):
        """Send each answer (lock held, either thread); True: wake the selector."""
        now = time.monotonic()
        for (conn, _), answer in zip(batch, answers):
            # Cleared and sent under one hold: the selector cannot answer
            # this connection's next frame before this one.
            conn.inflight = False
            if not conn.decoder.buffered:
                conn.idle_since = now
            self._resume.add(conn)
            self._send_locked(conn, answer)
        return True
