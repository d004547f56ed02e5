"""`daozhang device provision`: a device's key, config and journal in one directory.

The directory (--out DIR) is what gets installed at the board's state_dir
(/var/lib/daozhang on the Pi): agent.toml, device.key (0600), device.pub,
the journal, and copies of the merchant profile and the trusted public keys.
Everything is checked before anything is written; on a failure midway the
files this run created are removed again.
"""

import json
import os
import shutil

import click

from daozhang.agent.config import render_agent_config
from daozhang.agent.core.errors import LocalError
from daozhang.agent.journal_file import create_journal
from daozhang.agent.profile import load_profile
from daozhang.agent.signer import fingerprint, generate_keypair, load_public_key, raw_public
from daozhang.boards.load import load_board
from daozhang.cli.sizes import ByteSize

_ID_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def _check_device_id(device_id):
    if not 1 <= len(device_id) <= 64 or set(device_id) - _ID_CHARS:
        raise LocalError("--device-id: expected 1-64 of A-Z a-z 0-9 . _ - (SPEC 3.1), got %r" % device_id)


def _check_pubkey(option, path):
    try:
        return raw_public(load_public_key(path))
    except LocalError as exc:
        raise LocalError("%s %s: %s" % (option, path, exc)) from None


@click.command("provision")
@click.option("--board", required=True, help="Board name (rpi4, generic-linux) or a board .toml.")
@click.option("--device-id", required=True, help="This terminal's id: 1-64 of A-Z a-z 0-9 . _ -")
@click.option("--profile", "profile_path", required=True, type=click.Path(dir_okay=False),
              help="The merchant profile (TOML), e.g. examples/merchant.toml.")
@click.option("--backend-pubkey", required=True, type=click.Path(dir_okay=False),
              help="The backend's public key (PEM): the device trusts its acks.")
@click.option("--technician-pubkey", "technician_pubkeys", multiple=True, type=click.Path(dir_okay=False),
              help="A technician's public key (PEM) for the service port; repeatable.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory to create (installed at the board's state_dir).")
@click.option("--journal-size", type=ByteSize(), default=None, help="Override the board's journal size.")
@click.option("--segment-size", type=ByteSize(), default=None, help="Override the board's segment size.")
@click.option("--socket", "socket_path", default=None, help="Override the board's intake socket path.")
@click.option("--socket-group", default=None, help="Override the board's intake socket group (\"\": none).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def provision(board, device_id, profile_path, backend_pubkey, technician_pubkeys, out_dir,
              journal_size, segment_size, socket_path, socket_group, as_json):
    """Create a device's Ed25519 key (0600), DIR/agent.toml and its journal."""
    _check_device_id(device_id)
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
    targets.append(os.path.join(out_dir, names["key"][:-4] + ".pub"))
    for path in targets:
        if os.path.exists(path):
            raise LocalError("%s exists: refusing to overwrite a provisioned device (choose another --out)" % path)
    created = []
    try:
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
        created.append(os.path.join(out_dir, names["journal"]))
        create_journal(created[-1], device_id, size=size, segment_size=seg)
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
    info = {"device_id": device_id, "board": b["name"], "dir": os.path.abspath(out_dir),
            "config": os.path.abspath(os.path.join(out_dir, names["config"])),
            "public_key": public.hex(), "fingerprint": fingerprint(public),
            "journal_size": size, "segment_size": seg}
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
        return
    click.echo("device      %s (board %s)" % (device_id, b["name"]))
    click.echo("config      %s" % info["config"])
    click.echo("public key  %s" % info["public_key"])
    click.echo("fingerprint %s" % info["fingerprint"])
