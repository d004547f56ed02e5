"""The POS intake socket: a Unix stream socket, one thread per POS connection.

Threads, not asyncio: the journal's append blocks until its group commit is
durable, and concurrent appenders must block *together* to share one fsync.
A thread per connection gives exactly that with no executor plumbing, and a
POS terminal has a handful of processes, not thousands (MAX_CONNECTIONS caps
it anyway).

Each connection: bytes -> FrameDecoder (agent/core/intake_frames.py, sans-IO)
-> IntakeService.submit -> one response frame.  Requests on one connection
are answered in order.  What can go wrong and what happens (SPEC 5.2):

- a frame with no JSON object, a bad envelope: an error response, the
  connection stays open;
- a frame length of 0 or above the limit: an error response, then close;
- a frame half-sent when the client goes quiet for `frame_timeout` seconds,
  or closes: close; nothing of it was journaled (a transaction is only
  journaled once its whole frame is in and validated);
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

from daozhang.agent.core import intake_frames as frames
from daozhang.agent.core.errors import LocalError
from daozhang.agent.intake_service import Refused

MAX_CONNECTIONS = 256
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


def _peer_pid(sock):
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[0]
    except OSError:
        return None


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
                 idle_timeout=300.0, frame_timeout=10.0, max_frame=frames.MAX_FRAME):
        self.service = service
        self.path = path
        self.mode = mode
        self.group = group
        self.log = log or (lambda event, **fields: None)
        self.idle_timeout = idle_timeout
        self.frame_timeout = frame_timeout
        self.max_frame = max_frame
        self._listener = None
        self._lock = threading.Lock()
        self._conns = {}           # socket -> thread
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
        for _, thread in conns:
            thread.join(timeout)
            left += thread.is_alive()
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
            with self._lock:
                if len(self._conns) >= MAX_CONNECTIONS:
                    self._refuse_busy(conn)
                    continue
                thread = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                          name="intake-conn")
                self._conns[conn] = thread
            thread.start()

    def _refuse_busy(self, conn):
        try:
            conn.settimeout(1.0)
            conn.sendall(frames.error_response(None, "busy", "too many POS connections (limit %d)"
                                               % MAX_CONNECTIONS))
        except OSError:
            pass
        conn.close()
        self.log("intake_busy", level="warning", limit=MAX_CONNECTIONS)

    # -- one connection ----------------------------------------------------------------

    def _serve(self, conn):
        pid = _peer_pid(conn)
        decoder = frames.FrameDecoder(self.max_frame)
        try:
            conn.settimeout(None)
            _kernel_timeout(conn, socket.SO_SNDTIMEO, self.frame_timeout)
            self._serve_loop(conn, decoder, pid)
        except Exception as exc:   # the daemon must outlive any one connection
            self.log("intake_connection_error", level="error", pid=pid, error=type(exc).__name__)
        finally:
            with self._lock:
                self._conns.pop(conn, None)
            conn.close()

    def _serve_loop(self, conn, decoder, pid):
        armed = None               # the receive timeout the kernel holds now
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
                # Between frames the POS may idle; inside one it must keep sending.
                want = self.frame_timeout if decoder.buffered else self.idle_timeout
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
                decoder.receive_data(data)
                continue
            if not self._send(conn, self._answer(event, pid), pid):
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
