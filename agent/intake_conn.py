"""One POS connection's state and the socket plumbing of the intake
(agent/intake.py): the listening socket, the peer's identity, and a batch
of requests turned into answer frames."""

import grp
import os
import socket
import stat
import struct
import time

from daozhang.agent.core.errors import LocalError
from daozhang.agent.core.intake import intake_frames as frames
from daozhang.agent.intake_service import Refused


def bind_listener(path, mode, group):
    """The intake's listening socket at `path` (mode, group), non-blocking."""
    gid = None
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise LocalError("intake.group: no group %r on this system (create it, or set "
                             "the POS user's group)" % group) from None
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    _remove_stale_socket(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Bind under a umask that leaves no window with a wider mode.
    old = os.umask(0o777 & ~mode)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, mode)
    if gid is not None:
        os.chown(path, -1, gid)
    listener.listen(128)
    listener.setblocking(False)
    return listener


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


def peer_creds(sock):
    """(pid, uid) of the peer process, or (None, None) where the socket shows none."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", creds)
        return pid, uid
    except OSError:
        return None, None


def refuse_busy(sock, message):
    """Answer a connection there is no room for `busy`, and close it."""
    try:
        # A fresh socket's send buffer is empty: the short answer fits.
        sock.setblocking(False)
        sock.send(frames.error_response(None, "busy", message))
    except OSError:
        pass
    sock.close()


class Conn:
    """One POS connection.  `idle_since` is None while a frame is under way or
    its answer is being made; `evicted` once it was chosen to make room."""
    __slots__ = ("sock", "pid", "uid", "idle_since", "evicted", "decoder", "frame_deadline",
                 "inflight", "eof", "out", "send_deadline", "closed", "paused", "broken", "events")

    def __init__(self, sock, pid, uid, max_frame):
        self.sock = sock
        self.pid = pid
        self.uid = uid
        self.idle_since = time.monotonic()
        self.evicted = False
        self.decoder = frames.FrameDecoder(max_frame)
        self.frame_deadline = None     # monotonic time the frame under way must be in by
        self.inflight = False          # a submit is with the committer
        self.eof = False               # the client will send no more (or must not)
        self.out = bytearray()         # answer bytes the socket has not taken yet
        self.send_deadline = None
        self.closed = False
        self.paused = False            # not read while its buffer is full and a submit in flight
        self.broken = False            # a send failed: close it
        self.events = 0                # what the selector watches for it now

    def deadline(self, idle_timeout):
        """The monotonic time this connection must next be looked at."""
        idle = None if self.idle_since is None else self.idle_since + idle_timeout
        return min(t for t in (self.send_deadline, self.frame_deadline, idle, float("inf"))
                   if t is not None)

    def expired(self, now, idle_timeout):
        """Which deadline has passed: "send", "frame", "idle", or None."""
        if self.send_deadline is not None and now >= self.send_deadline:
            return "send"
        if self.inflight:
            return None
        if self.frame_deadline is not None and now >= self.frame_deadline:
            return "frame"
        if self.idle_since is not None and not self.out and now - self.idle_since >= idle_timeout:
            return "idle"
        return None


def answer_batch(service, requests, log):
    """(one answer frame per request, in order; finish) from one
    IntakeService.commit_many: call finish() once the answers are sent."""
    try:
        results, finish = service.commit_many([request.txn for request in requests])
    except Exception as exc:
        log("intake_internal_error", level="error", error=type(exc).__name__)
        return [frames.error_response(request.id, "internal_error",
                                      "the agent failed on this request (%s); nothing "
                                      "partial was journaled" % type(exc).__name__)
                for request in requests], _nothing
    answers = []
    for request, result in zip(requests, results):
        if isinstance(result, Refused):
            answers.append(frames.error_response(request.id, result.code, str(result),
                                                 result.field))
        else:
            answers.append(frames.ok_response(request.id, result))
    return answers, finish


def _nothing():
    pass
