"""The POS intake socket: a Unix stream socket, one thread per POS connection.

Threads, not asyncio: the journal's append blocks until its group commit is
durable, and concurrent appenders must block *together* to share one fsync.
A thread per connection gives exactly that with no executor plumbing, and a
POS terminal has a handful of processes, not thousands (MAX_CONNECTIONS caps
it anyway, and idle connections give way to new ones).

Each connection: bytes -> FrameDecoder (agent/core/intake_frames.py, sans-IO)
-> IntakeService.submit -> one response frame.  Requests on one connection
are answered in order.  What can go wrong and what happens (SPEC 5.2):

- a frame with no JSON object, a bad envelope: an error response, the
  connection stays open;
- a frame length of 0 or above the limit: an error response, then close;
- a frame not wholly received `frame_timeout` seconds after its first byte
  (a deadline per frame, not per read: a client trickling one byte every
  few seconds is closed all the same), or whose client closes: close;
  nothing of it was journaled (a transaction is only journaled once its
  whole frame is in and validated);
- a connection idle (between frames) for `idle_timeout` seconds: closed
  quietly;
- all slots taken (MAX_CONNECTIONS), or the client's identity (its uid from
  SO_PEERCRED) holding `max_per_identity` of them: the connection idle the
  longest (of that identity, when it is the identity's cap) is closed to make
  room; only when none is idle (every one mid-frame, each bounded by its frame
  deadline) is the newcomer refused `busy`.  So idle clients never lock out
  the real POS, and another user's clients can never take more than their
  share;
- a client that vanishes before its response: the transaction stays
  committed (resubmitting it returns the same receipt), the send error is
  logged, the thread ends;
- anything unexpected inside: an `internal_error` response and a log line;
  the daemon keeps serving.
"""

import grp
import os
import socket
import stat
import struct
import threading
import time

from daozhang.agent.core import intake_frames as frames
from daozhang.agent.core.errors import LocalError
from daozhang.agent.intake_service import Refused

MAX_CONNECTIONS = 256
MAX_PER_IDENTITY = 64      # connections one uid may hold (SO_PEERCRED)
RECV_SIZE = 65536
_TIMEVAL = struct.Struct("ll")     # struct timeval on Linux: time_t, suseconds_t


def _kernel_timeout(sock, option, seconds):
    """A timeout the kernel enforces on a blocking socket (SO_RCVTIMEO/SO_SNDTIMEO).

    Python's own socket timeouts put the fd in non-blocking mode and poll()
    before every recv and send, and settimeout() is an ioctl: four extra
    system calls per request on the hot path.  With the kernel's timeout a
    recv is one call; when it expires, recv raises BlockingIOError (EAGAIN).
    """
    whole = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, option,
                    _TIMEVAL.pack(whole, int((seconds - whole) * 1000000)))


def _peer_creds(sock):
    """(pid, uid) of the peer process, or (None, None) where the socket shows none."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", creds)
        return pid, uid
    except OSError:
        return None, None


class _Conn:
    """What the accept loop knows of one connection: whose it is, and since
    when it has been idle (None: mid-frame or answering)."""
    __slots__ = ("sock", "thread", "pid", "uid", "idle_since", "evicted")

    def __init__(self, sock, pid, uid):
        self.sock = sock
        self.thread = None
        self.pid = pid
        self.uid = uid
        self.idle_since = time.monotonic()
        self.evicted = False


def _remove_stale_socket(path):
    """Unlink a socket file left by a killed daemon; refuse if one is live."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise LocalError("%s exists and is not a socket: refusing to replace it "
                         "(intake.socket in the config)" % path)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)
        return
    finally:
        probe.close()
    raise LocalError("%s: another agent is listening on this socket" % path)


class IntakeServer:
    def __init__(self, service, path, mode=0o660, group=None, log=None,
                 idle_timeout=300.0, frame_timeout=10.0, max_frame=frames.MAX_FRAME,
                 max_connections=MAX_CONNECTIONS, max_per_identity=MAX_PER_IDENTITY):
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
        self._lock = threading.Lock()
        self._conns = {}           # socket -> _Conn
        self._accept_thread = None
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------

    def start(self):
        gid = None
        if self.group:
            try:
                gid = grp.getgrnam(self.group).gr_gid
            except KeyError:
                raise LocalError("intake.group: no group %r on this system (create it, or set "
                                 "the POS user's group)" % self.group) from None
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        _remove_stale_socket(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Bind under a umask that leaves no window with a wider mode.
        old = os.umask(0o777 & ~self.mode)
        try:
            listener.bind(self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, self.mode)
        if gid is not None:
            os.chown(self.path, -1, gid)
        listener.listen(128)
        self._listener = listener
        self._accept_thread = threading.Thread(target=self._accept_loop, name="intake-accept",
                                               daemon=True)
        self._accept_thread.start()
        self.log("intake_listening", socket=self.path, mode="%04o" % self.mode,
                 group=self.group or "-")

    def stop_accepting(self):
        """Close the listening socket: no new connections (SIGTERM, step 1)."""
        self._stopping = True
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        if self._accept_thread is not None:
            self._accept_thread.join(5)
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def drain(self, timeout):
        """Stop reading new requests; wait for the ones in flight (SIGTERM, step 2).

        SHUT_RD ends each connection's read loop; a request already read is
        still answered (the write side stays open).  Returns how many
        connection threads are still running after `timeout` seconds.
        """
        with self._lock:
            conns = list(self._conns.items())
        for sock, _ in conns:
            try:
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        left = 0
        for _, conn in conns:
            conn.thread.join(timeout)
            left += conn.thread.is_alive()
        return left

    @property
    def connections(self):
        with self._lock:
            return len(self._conns)

    # -- accepting -----------------------------------------------------------------

    def _accept_loop(self):
        while not self._stopping:
            listener = self._listener
            if listener is None:
                return
            try:
                conn, _ = listener.accept()
            except OSError:
                if self._stopping:
                    return
                continue
            pid, uid = _peer_creds(conn)
            with self._lock:
                if not self._make_room_locked(uid):
                    self._refuse_busy(conn, uid)
                    continue
                entry = _Conn(conn, pid, uid)
                entry.thread = threading.Thread(target=self._serve, args=(entry,), daemon=True,
                                                name="intake-conn")
                self._conns[conn] = entry
            entry.thread.start()

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
            # Its thread reads end-of-stream and closes; a request it has
            # already read is still answered (the write side stays open).
            victim.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        self.log("intake_evicted_idle", level="warning", pid=victim.pid, uid=victim.uid,
                 reason=why)
        return True

    def _refuse_busy(self, conn, uid):
        try:
            conn.settimeout(1.0)
            conn.sendall(frames.error_response(None, "busy", "too many POS connections (limit %d, "
                                               "%d per user), none idle"
                                               % (self.max_connections, self.max_per_identity)))
        except OSError:
            pass
        conn.close()
        self.log("intake_busy", level="warning", limit=self.max_connections, uid=uid)

    # -- one connection ----------------------------------------------------------------

    def _serve(self, entry):
        conn, pid = entry.sock, entry.pid
        decoder = frames.FrameDecoder(self.max_frame)
        try:
            conn.settimeout(None)
            _kernel_timeout(conn, socket.SO_SNDTIMEO, self.frame_timeout)
            self._serve_loop(entry, decoder, pid)
        except Exception as exc:   # the daemon must outlive any one connection
            self.log("intake_connection_error", level="error", pid=pid, error=type(exc).__name__)
        finally:
            with self._lock:
                self._conns.pop(conn, None)
            conn.close()

    def _serve_loop(self, entry, decoder, pid):
        conn = entry.sock
        armed = None               # the receive timeout the kernel holds now
        frame_deadline = None      # monotonic time the frame under way must be in by
        while True:
            try:
                event = decoder.next_event()
            except frames.FrameError as exc:
                self.log("intake_bad_frame", level="warning", pid=pid, code=exc.code)
                self._send(conn, frames.error_response(None, exc.code, str(exc)), pid)
                return
            if event == frames.CLOSED:
                return
            if event == frames.NEED_DATA:
                if decoder.buffered:
                    # Inside a frame the POS must finish it within frame_timeout
                    # of its first byte, however it spreads the bytes.
                    if frame_deadline is None:
                        frame_deadline = time.monotonic() + self.frame_timeout
                    want = frame_deadline - time.monotonic()
                    if want <= 0:
                        self.log("intake_frame_timeout", level="warning", pid=pid,
                                 buffered=decoder.buffered)
                        return
                    want = max(want, 0.001)
                else:
                    # Between frames the POS may idle.
                    frame_deadline = None
                    want = self.idle_timeout
                    # Idle since the answer left (stamped there), not since this
                    # thread got scheduled again: a late re-stamp made an older
                    # connection look newer than one just accepted, so eviction
                    # picked by scheduling rather than by idle time.
                    if entry.idle_since is None:
                        entry.idle_since = time.monotonic()
                if want != armed:
                    _kernel_timeout(conn, socket.SO_RCVTIMEO, want)
                    armed = want
                try:
                    data = conn.recv(RECV_SIZE)
                except (BlockingIOError, socket.timeout):
                    if decoder.buffered:
                        self.log("intake_frame_timeout", level="warning", pid=pid,
                                 buffered=decoder.buffered)
                    return
                except OSError:
                    return
                entry.idle_since = None
                decoder.receive_data(data)
                continue
            frame_deadline = None
            answer = self._answer(event, pid)
            if not decoder.buffered:
                # Idle from here: marked before the answer leaves, so a client
                # that has its answer is always seen idle (SHUT_RD by an
                # eviction still lets this send complete).
                entry.idle_since = time.monotonic()
            if not self._send(conn, answer, pid):
                return

    def _answer(self, message, pid):
        try:
            request = frames.parse_request(message)
        except frames.FrameError as exc:
            self.log("intake_bad_request", level="warning", pid=pid, code=exc.code)
            return frames.error_response(exc.request_id, exc.code, str(exc))
        if request.op == "ping":
            return frames.ok_response(request.id, {"pong": True, "dev": self.service.dev})
        try:
            result = self.service.submit(request.txn)
        except Refused as exc:
            return frames.error_response(request.id, exc.code, str(exc), exc.field)
        except Exception as exc:
            self.log("intake_internal_error", level="error", pid=pid, error=type(exc).__name__)
            return frames.error_response(request.id, "internal_error",
                                         "the agent failed on this request (%s); nothing "
                                         "partial was journaled" % type(exc).__name__)
        return frames.ok_response(request.id, result)

    def _send(self, conn, data, pid):
        try:
            conn.sendall(data)          # bounded by SO_SNDTIMEO (frame_timeout)
            return True
        except OSError as exc:
            self.log("intake_client_gone", level="warning", pid=pid, error=type(exc).__name__)
            return False
