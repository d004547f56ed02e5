"""Submit transactions to a daozhang agent: a POS app may vendor this file.

Standard library only (socket, json, struct).  Protocol: docs/SPEC.md §4-5
section 5: a 4-byte big-endian length, then one JSON object.

    from daozhang.client import Client, Refused
    with Client("/run/daozhang/intake.sock") as agent:
        receipt = agent.submit({"kind": "sale", "pos_txn_id": "T-1", ...})
        print(receipt["seq"], receipt["receipt_code"])   # print the code as a QR

`submit` returns only once the agent has committed the transaction (fsync'd
and covered by a signed checkpoint).  It raises:

- Refused: the agent refused the transaction (`.code`, `.field`, message);
  nothing was journaled.  Resubmitting the same pos_txn_id with the same
  content is always safe: it returns the original receipt.
- AgentUnavailable: no agent, a broken connection or a timeout.  The
  transaction may or may not be committed: resubmit it (same pos_txn_id).
- ProtocolError: the agent's answer broke the protocol.
"""

import json
import socket
import struct
import sys

from daozhang.agent.core import strict_json

MAX_FRAME = 65536
DEFAULT_SOCKET = "/run/daozhang/intake.sock"
_HEADER = struct.Struct(">I")
# Linux: let the kernel time out a blocking socket (SO_RCVTIMEO/SO_SNDTIMEO).
# Python's own timeouts poll() before every send and recv: twice the system
# calls per request, on the same CPUs the agent needs.  Elsewhere (the
# struct timeval layout differs) settimeout() as usual.
_KERNEL_TIMEOUTS = sys.platform.startswith("linux")


class ClientError(Exception):
    pass


class Refused(ClientError):
    def __init__(self, code, message, field=None):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.field = field


class AgentUnavailable(ClientError):
    pass


class ProtocolError(ClientError):
    pass


class Client:
    def __init__(self, path=DEFAULT_SOCKET, timeout=30.0):
        self.path = path
        self.timeout = timeout
        self._sock = None
        self._next_id = 1
        self._buf = b""

    def connect(self):
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
                if _KERNEL_TIMEOUTS and self.timeout is not None:
                    whole = int(self.timeout)
                    tv = struct.pack("ll", whole, int((self.timeout - whole) * 1000000))
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
                    sock.settimeout(None)
            except OSError as exc:
                sock.close()
                raise AgentUnavailable("cannot connect to the agent at %s: %s"
                                       % (self.path, exc.strerror or exc)) from None
            self._sock = sock
            self._buf = b""
        return self

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()

    def submit(self, txn):
        """Commit one transaction; return its receipt dict (seq, hash, receipt_code, ...)."""
        return self.request("submit", txn)

    def ping(self):
        return self.request("ping")

    def request(self, op, txn=None):
        self.connect()
        rid = self._next_id
        self._next_id += 1
        msg = {"v": 1, "id": rid, "op": op}
        if txn is not None:
            msg["txn"] = txn
        body = json.dumps(msg, separators=(",", ":")).encode("utf-8")
        if len(body) > MAX_FRAME:
            raise Refused("frame_too_large", "request of %d bytes, limit %d" % (len(body), MAX_FRAME))
        try:
            self._sock.sendall(_HEADER.pack(len(body)) + body)
            reply = self._read_frame()
        except (OSError, AgentUnavailable) as exc:
            self.close()
            raise AgentUnavailable("connection to the agent lost (%s): the transaction may be "
                                   "committed; resubmit it with the same pos_txn_id" % exc) from None
        if not isinstance(reply, dict) or "ok" not in reply:
            self.close()
            raise ProtocolError("the agent's reply is not a response object")
        if reply.get("id") not in (rid, None):
            self.close()
            raise ProtocolError("reply id %r, expected %r" % (reply.get("id"), rid))
        if not reply["ok"]:
            err = reply.get("error") or {}
            if reply.get("id") is None:
                self.close()   # a fatal frame error: the agent closes the connection
            raise Refused(err.get("code", "unknown"), err.get("message", ""), err.get("field"))
        return reply.get("result")

    def _read_exact(self, n):
        # Read in large chunks: a whole reply usually arrives in one recv.
        buf = self._buf
        while len(buf) < n:
            chunk = self._sock.recv(max(65536, n - len(buf)))
            if not chunk:
                self._buf = b""
                raise AgentUnavailable("the agent closed the connection")
            buf += chunk
        self._buf = buf[n:]
        return buf[:n]

    def _read_frame(self):
        n = _HEADER.unpack(self._read_exact(4))[0]
        if not 1 <= n <= MAX_FRAME:
            raise ProtocolError("reply frame length %d outside 1..%d" % (n, MAX_FRAME))
        try:
            return strict_json.loads(self._read_exact(n).decode("utf-8"))
        except ValueError:
            raise ProtocolError("reply frame is not UTF-8 JSON") from None


def submit(txn, path=DEFAULT_SOCKET, timeout=30.0):
    """One-shot: connect, submit, close."""
    with Client(path, timeout) as agent:
        return agent.submit(txn)
