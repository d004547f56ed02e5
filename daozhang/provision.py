"""Provisioning a device: its key, config and journal in one directory
(the library behind `daozhang device provision`, which only parses and prints).

The directory (--out DIR) is what gets installed at the board's state_dir
(/var/lib/daozhang on the Pi): agent.toml, device.key (0600), device.pub,
the journal, and copies of the merchant profile and the trusted public keys.
Everything is checked before anything is written; on a failure midway the
files this run created are removed again.
"""

import os
import shutil

from daozhang.agent.config import render_agent_config
from daozhang.agent.core import device_id as device_id_rule
from daozhang.agent.core.errors import LocalError
from daozhang.agent.journal_file import create_journal
from daozhang.profile import load_profile
from daozhang.signing import fingerprint, generate_keypair, load_public_key, raw_public
from daozhang.boards.load import load_board

def parse_broker(value):
    """--broker HOST[:PORT] (an IPv6 host in brackets: [::1]:8883) -> (host, port)."""
    text = value.strip()
    host, port = text, 8883
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise LocalError("--broker: expected [IPv6]:PORT, got %r" % value)
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise LocalError("--broker: expected [IPv6]:PORT, got %r" % value)
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or any(c in host for c in " /"):
        raise LocalError("--broker: expected HOST:PORT, got %r" % value)
    try:
        port = int(port)
    except ValueError:
        raise LocalError("--broker: port %r is not a number (HOST:PORT)" % (port,)) from None
    if not 1 <= port <= 65535:
        raise LocalError("--broker: port %d out of range 1..65535" % port)
    return host, port


def _check_tls(device_id, ca, cert, key):
    """The device's TLS files: PEM, the certificate's CN is the device id (the
    broker's ACL names devices by CN) and the key is the certificate's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    def read(option, path):
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise LocalError("%s %s: cannot read: %s" % (option, path, exc.strerror)) from None

    try:
        x509.load_pem_x509_certificates(read("--ca", ca))
    except ValueError:
        raise LocalError("--ca %s: expected PEM certificate(s) (the fleet CA)" % ca) from None
    try:
        crt = x509.load_pem_x509_certificate(read("--cert", cert))
    except ValueError:
        raise LocalError("--cert %s: expected a PEM certificate" % cert) from None
    names = crt.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = names[0].value if names else None
    if cn != device_id:
        raise LocalError("--cert %s: CN is %r, expected the device id %r (`daozhang pki device %s`)"
                         % (cert, cn, device_id, device_id))
    try:
        private = serialization.load_pem_private_key(read("--key", key), password=None)
    except (ValueError, TypeError):
        raise LocalError("--key %s: expected an unencrypted PEM private key" % key) from None
    pem = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.PEM
    if private.public_key().public_bytes(enc, pem) != crt.public_key().public_bytes(enc, pem):
        raise LocalError("--key %s: not the key of --cert %s" % (key, cert))


def _check_pubkey(option, path):
    try:
        return raw_public(load_public_key(path))
    except LocalError as exc:
        raise LocalError("%s %s: %s" % (option, path, exc)) from None


def mqtt_table_for(device_id, broker, tls):
    """The agent's [mqtt] table for --broker with --ca --cert --key (checked), or
    None for a journaling-only device; `tls` is (ca, cert, key) paths or None."""
    ca_path, cert_path, key_path = tls or (None, None, None)
    tls_given = [o for o, v in (("--ca", ca_path), ("--cert", cert_path), ("--key", key_path)) if v]
    mqtt_table = None
    if broker is None and tls_given:
        raise LocalError("%s given without --broker HOST:PORT" % ", ".join(tls_given))
    if broker is not None:
        missing = [o for o in ("--ca", "--cert", "--key") if o not in tls_given]
        if missing:
            raise LocalError("--broker needs the device's TLS files: missing %s" % ", ".join(missing))
        host, port = parse_broker(broker)
        _check_tls(device_id, ca_path, cert_path, key_path)
        mqtt_table = {"host": host, "port": port, "ca": "ca.crt", "cert": "device-tls.crt",
                      "key": "device-tls.key"}
    return mqtt_table


def provision_device(out_dir, board, device_id, profile_path, backend_pubkey, technician_pubkeys=(),
                     journal_size=None, segment_size=None, socket_path=None, socket_group=None,
                     broker=None, tls=None):
    """Create a device's Ed25519 key (0600), OUT_DIR/agent.toml and its journal.

    With `broker` ("HOST[:PORT]") and `tls` (ca, cert, key paths) the device is
    complete: the TLS files are copied in (ca.crt, device-tls.crt,
    device-tls.key) and agent.toml gets its [mqtt] table.  Everything is checked
    before anything is written; on a failure midway the files this run created
    are removed again.  Returns what was made (the CLI prints it)."""
    device_id_rule.check(device_id, "--device-id")   # SPEC 3.1
    mqtt_table = mqtt_table_for(device_id, broker, tls)
    b = load_board(board)
    load_profile(profile_path)                  # ProfileError names the file and key
    _check_pubkey("--backend-pubkey", backend_pubkey)
    for path in technician_pubkeys:
        _check_pubkey("--technician-pubkey", path)
    size = journal_size or b["journal"]["size"]
    seg = segment_size or b["journal"]["segment_size"]
    names = {"config": "agent.toml", "key": b["key"]["file"], "journal": b["journal"]["file"],
             "profile": "merchant.toml", "backend": "backend.pub"}
    if not names["key"].endswith(".key"):
        raise LocalError("%s: key.file: expected a name ending in .key, got %r" % (b["path"], names["key"]))
    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    targets = [os.path.join(out_dir, n) for n in names.values()]
    if mqtt_table is not None:
        targets += [os.path.join(out_dir, mqtt_table[k]) for k in ("ca", "cert", "key")]
    targets.append(os.path.join(out_dir, names["key"][:-4] + ".pub"))
    for path in targets:
        if os.path.exists(path):
            raise LocalError("%s exists: refusing to overwrite a provisioned device (choose another --out)" % path)
    created = []
    try:
        public, techs = _write_keys_and_copies(out_dir, names, created, profile_path, backend_pubkey,
                                               technician_pubkeys, mqtt_table, tls)
        created.append(os.path.join(out_dir, names["journal"]))
        create_journal(created[-1], device_id, size=size, segment_size=seg,
                       sector_size=b["journal"]["sector_size"])
        tables = _agent_tables(device_id, b, names, techs, size, seg, socket_path, socket_group, mqtt_table)
        header = ("# daozhang agent config for device %s (board %s), written by\n"
                  "# `daozhang device provision`.  Relative paths are relative to this file.\n"
                  "# Run: daozhang agent run --config %s" % (device_id, b["name"], names["config"]))
        created.append(os.path.join(out_dir, names["config"]))
        with open(created[-1], "x", encoding="utf-8") as f:
            f.write(render_agent_config(tables, header))
    except BaseException:
        for path in created:
            try:
                os.unlink(path)
            except OSError:
                pass
        raise
    return {"device_id": device_id, "board": b["name"], "dir": os.path.abspath(out_dir),
            "config": os.path.abspath(os.path.join(out_dir, names["config"])),
            "public_key": public.hex(), "fingerprint": fingerprint(public),
            "journal_size": size, "segment_size": seg,
            "broker": None if mqtt_table is None else "%s:%d" % (mqtt_table["host"], mqtt_table["port"])}


def _write_keys_and_copies(out_dir, names, created, profile_path, backend_pubkey, technician_pubkeys,
                           mqtt_table, tls):
    """The key pair and the copied files; each path goes into `created` before
    it is written, so the caller can remove what a failure left.  Returns the
    raw public key and the technician key file names."""
    prefix = os.path.join(out_dir, names["key"][:-4])
    created += [prefix + ".key", prefix + ".pub"]
    public = generate_keypair(prefix)
    for src, name in [(profile_path, names["profile"]), (backend_pubkey, names["backend"])]:
        created.append(os.path.join(out_dir, name))
        shutil.copyfile(src, created[-1])
    techs = []
    for i, src in enumerate(technician_pubkeys, 1):
        techs.append("technician-%d.pub" % i)
        created.append(os.path.join(out_dir, techs[-1]))
        shutil.copyfile(src, created[-1])
    if mqtt_table is not None:
        ca_path, cert_path, key_path = tls
        for src, name, mode in [(ca_path, mqtt_table["ca"], 0o644),
                                (cert_path, mqtt_table["cert"], 0o644),
                                (key_path, mqtt_table["key"], 0o600)]:
            dst = os.path.join(out_dir, name)
            created.append(dst)
            with open(src, "rb") as fin:
                data = fin.read()
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "wb") as fout:
                fout.write(data)
    return public, techs


def _agent_tables(device_id, b, names, techs, size, seg, socket_path, socket_group, mqtt_table):
    """agent.toml's tables: the board's defaults, the overrides given, file names relative to it."""
    tables = {
        "device": {"id": device_id, "board": b["name"], "key": names["key"],
                   "backend_pubkey": names["backend"], "technician_pubkeys": techs,
                   "profile": names["profile"]},
        "journal": {"path": names["journal"], "size": size, "segment_size": seg},
        "intake": {"socket": socket_path or b["intake"]["socket"],
                   "group": b["intake"]["group"] if socket_group is None else socket_group,
                   "mode": "%04o" % b["intake"]["mode"]},
        "watchdog": {"heartbeat_s": b["watchdog"]["heartbeat_s"]},
        "service_port": {"device": b["service_port"]["device"]},
        "outputs": b["outputs"],
    }
    if mqtt_table is not None:
        tables["mqtt"] = mqtt_table
    return tables
