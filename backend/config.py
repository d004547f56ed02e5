"""backend.toml: the backend worker's configuration (`daozhang backend run
--config FILE`); the format is in backend/service.py's docstring and the
README.  `load_backend_config(path)` checks every table and key and resolves
paths; the MQTT 5 share group must be a deployment secret (SPEC 6.10.4).
"""

import os
import secrets
import socket

from daozhang.toml_tables import ConfigFileError, check_tables, read_toml

BROKER_KEYS = {"host", "port", "ca", "cert", "key", "tls", "keepalive", "client_id", "session_expiry_s"}
BACKEND_KEYS = {"key", "db", "share_group", "gap_grace_s", "log", "worker", "settlement_resend_s",
                "stall_after_s", "all_signatures"}
# SPEC 6.10.4: how long the broker keeps a dead worker's session.  Mosquitto
# goes on handing such a session its turn of the group's messages, which then
# wait there: long enough to ride out a crash and restart, short enough that
# a worker killed for good stops swallowing its share soon (the agents resend
# what is never acked).  Keep it well under gap_grace_s (30): a batch held in
# a dead session opens a gap at the backend until the agent resends it.  A
# worker that stops cleanly ends its session at once.
SESSION_EXPIRY_S = 10


def worker_client_id(broker, backend, hostname=None):
    """The worker's MQTT client id, the same across its restarts (SPEC 6.10.4):
    [broker] client_id, else backend-<host>-<worker> ([backend] worker, 1).
    Two workers on one host need different `worker` numbers: one id is one
    session, and the broker disconnects the older of two clients sharing it."""
    if broker.get("client_id"):
        return str(broker["client_id"])
    host = hostname or socket.gethostname() or "host"
    host = "".join(c if c.isalnum() or c in "-_." else "-" for c in host)[:40]
    return "backend-%s-%d" % (host, int(backend.get("worker", 1)))


ConfigError = ConfigFileError   # the one error class of every config file (daozhang/toml_tables.py)


# The default this file once had, printed in the README: known to anyone.
GUESSABLE_GROUPS = ("daozhang", "backend", "workers")


def new_share_group():
    """A fresh secret group name (SPEC 6.10.4): 64 random bits."""
    return "backend-" + secrets.token_hex(8)


def check_share_group(path, group):
    """The MQTT 5 share group must be a deployment secret: Mosquitto's ACL
    cannot refuse a SUBSCRIBE, so a device that knows the name can join the
    group and swallow its turn of every worker's messages (SPEC 6.10.3)."""
    if group is None:
        raise ConfigError(path, "backend.share_group", "missing; it must be a secret of this "
                          "deployment, e.g. share_group = \"%s\" (freshly generated)"
                          % new_share_group())
    if not isinstance(group, str) or not group or any(c in group for c in "/+#"):
        raise ConfigError(path, "backend.share_group", "expected a name without / + #, got %r"
                          % (group,))
    if group in GUESSABLE_GROUPS:
        raise ConfigError(path, "backend.share_group", "%r is guessable; use a random one, e.g. "
                          "share_group = \"%s\"" % (group, new_share_group()))
    return group


def load_backend_config(path):
    """backend.toml -> {"path", "broker": {...}, "backend": {...}}, paths
    resolved against the file's directory; ConfigError names file and key."""
    data = read_toml(path)
    base = os.path.dirname(os.path.abspath(path))
    check_tables(path, data, {"broker": BROKER_KEYS, "backend": BACKEND_KEYS})
    broker = dict(data.get("broker", {}))
    backend = dict(data.get("backend", {}))

    def resolve(value):
        return value if os.path.isabs(value) or "://" in value else os.path.join(base, value)

    for key in ("ca", "cert", "key"):
        if key in broker:
            broker[key] = resolve(broker[key])
    if "db" not in backend or "key" not in backend:
        raise ConfigError(path, "backend", "needs db and key")
    backend["key"] = resolve(backend["key"])
    backend["db"] = resolve(backend["db"])
    if backend.get("log"):
        backend["log"] = resolve(backend["log"])
    broker.setdefault("host", "127.0.0.1")
    # The backend workers' listener of examples/mosquitto (8883 is the
    # terminals', where every client id becomes the certificate's CN).
    broker.setdefault("port", 8884)
    backend["share_group"] = check_share_group(path, backend.get("share_group"))
    if type(backend.get("all_signatures", False)) is not bool:
        raise ConfigError(path, "backend.all_signatures", "expected true or false, got %r"
                          % (backend["all_signatures"],))
    worker = backend.get("worker", 1)
    if type(worker) is not int or not 1 <= worker <= 9999:
        raise ConfigError(path, "backend.worker", "expected a number 1-9999 (one per worker on a "
                          "host), got %r" % (worker,))
    expiry = broker.get("session_expiry_s", SESSION_EXPIRY_S)
    if type(expiry) is not int or not 0 < expiry <= 0xFFFFFFFF:
        raise ConfigError(path, "broker.session_expiry_s", "expected seconds > 0, got %r" % (expiry,))
    return {"path": path, "broker": broker, "backend": backend}
