"""The board's sync against the real thing (issue 16): firmware/umqtt_link.py (synccore's adapter over the sans-IO sync rules)
and micropython-lib's umqtt.simple, under MicroPython 1.29's WebAssembly
port, talk through the Node socket bridge (tests/mp/socket_bridge.mjs: TLS
with the device's certificate, Node's TLS stack) to a real mosquitto with the
shipped TLS/ACL config and a real backend (`daozhang backend run`, SQLite).

Invariant: every sale the board journaled reaches the backend exactly once,
every record is acked, the ack's cursors are committed (released held at
the first unsettled sale until the sales expire, then released up to the
ack), a settlement file ingested by `backend settle` reaches the board as
signed acks that resolve those sales, the overdue rest lights the LED, and the host verifier accepts what
the board signed.  tests/firmware/mp_sync_day.py is the board's side.
"""

import binascii
import json
import os
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daozhang.signing import load_public_key, raw_public
from dztest.dates import now_ms
from dztest.settlement_e2e import csv_row, write_csv
from dztest.micropython import MP_DIR, REPO, MicroPythonFailed, micropython_available

SCRIPT = os.path.join(REPO, "tests", "firmware", "mp_sync_day.py")
SALES = 12
SETTLED = 5


def _device_key(tmp, device_id):
    """A 32-byte Ed25519 seed (what the board keeps) and its public key as PEM for the backend."""
    seed = os.urandom(32)
    pub = os.path.join(tmp, device_id + "-board.pub")
    key = Ed25519PrivateKey.from_private_bytes(seed)
    with open(pub, "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    return seed, pub


def run_board(params, bridge, timeout=420, script_path=SCRIPT, steps=None, on_line=None):
    if not micropython_available():
        if os.environ.get("CI"):
            raise MicroPythonFailed("MicroPython port missing: run `npm ci --prefix tests/mp`")
        pytest.skip("MicroPython WebAssembly port not installed (npm install --prefix tests/mp)")
    script = os.path.join(params.pop("tmp"), "board.py")
    with open(script_path) as f, open(script, "w") as out:
        out.write("P = %s\n" % json.dumps(params) + f.read())
    env = dict(os.environ, DZ_SOCKET_BRIDGE=json.dumps(bridge))
    argv = ["node", os.path.join(MP_DIR, "run_portable.mjs"), REPO, "--script", script]
    if steps is not None:
        argv += ["--steps", str(steps)]
    lines = []
    with open(os.path.join(os.path.dirname(script), "board.err"), "w+") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, cwd=MP_DIR, env=env)
        try:
            # Line by line as the board prints them: `on_line` may act on a
            # phase marker (the board blocks on its socket meanwhile).
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if on_line is not None:
                    on_line(lines[-1], lines)
            proc.wait(timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        if proc.returncode != 0:
            raise MicroPythonFailed("\n".join(lines)[-3000:] + err.read()[-3000:])
    out = {}
    for line in lines:
        words = line.split(" ")
        if words[0] == "SALE":
            out.setdefault("SALE", []).append(json.loads(line[len("SALE "):]))
            continue
        out[words[0]] = dict(zip(words[::2], words[1::2])) if len(words) > 2 else "".join(words[1:])
    return out


def _world(world, tmp_path, device):
    """(params, bridge) for a board `device` known to the backend, with its own key and certificate."""
    world.start_backend("b1")
    cert = world.broker.pki.add_device(device)
    seed, pub = _device_key(str(tmp_path), device)
    world.cli("backend", "device", "add", device, "--pubkey", pub, "--db", world.db)
    with open(world.backend_key + ".pub", "rb") as f:
        backend_pub = raw_public(load_public_key(f.read()))
    s = world.broker.settings(device)
    params = {"tmp": str(tmp_path), "device": device, "host": s["host"], "port": s["port"],
              "journal_id": os.urandom(16).hex(), "seed": seed.hex(), "backend_pub": backend_pub.hex(),
              "now_ms": now_ms()}
    return params, {"tls": {"ca": s["ca"], "cert": cert.cert, "key": cert.key, "servername": "localhost"}}


@pytest.mark.timeout(600)
def test_board_syncs_receipts_over_umqtt_to_real_broker_and_backend(sqlite_world, tmp_path):
    world = sqlite_world
    params, bridge = _world(world, tmp_path, "mcu-sync-1")
    params["sales"] = SALES
    params["settled"] = SETTLED
    seed = bytes.fromhex(params["seed"])

    def settle(line, lines):
        if line != "SETTLE_READY":
            return
        sales = [json.loads(x[len("SALE "):]) for x in lines if x.startswith("SALE ")]
        csv_path = write_csv(str(tmp_path / "acquirer.csv"),
                             [csv_row("ACQ-MCU-%d" % i, txn, fee=txn["amount"] * 55 // 10000)
                              for i, txn in enumerate(sales[:SETTLED])])
        world.cli("backend", "settle", csv_path, "--config", world.backend_config("b1"), "--json")

    board = run_board(params, bridge, on_line=settle)

    sales = board["SALES"]
    assert int(sales["ACKED"]) > int(sales["LAST"])
    assert int(sales["RELEASED"]) <= int(sales["FIRST"])     # unsettled sales are kept
    assert board["SETTLED"] == {"SETTLED": str(SETTLED), "SETTLE_N": str(SETTLED)}
    assert board["LED"]["LED"] == "1"
    assert int(board["LED"]["FIRING"]) == SALES - SETTLED        # only the unsettled are overdue
    released = board["RELEASED"]
    assert int(released["RELEASED"]) >= int(sales["ACKED"])

    store = world.store()
    stats = store.stats()
    assert stats["receipts"] == SALES, stats                 # exactly once: the backend's records are unique by seq
    assert stats["records"] >= int(released["ACKED"]), stats
    assert stats["findings"] == 0, stats
    assert stats["alerts"] >= 1, stats                       # the overdue alerts also came up the alerts topic
    assert binascii.unhexlify(board["PUBLIC"]) == Ed25519PrivateKey.from_private_bytes(seed).public_key() \
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


HEAP_SCRIPT = os.path.join(REPO, "tests", "firmware", "mp_sync_heap.py")
BACKLOG = 1000


HEAP_BUDGET = 96 * 1024


@pytest.mark.timeout(900)
def test_heap_while_syncing_a_1000_record_backlog_with_100_alerts(sqlite_world, tmp_path):
    """Issue 16's heap budget: the board journals a 1,000-record backlog
    offline (340 sales, 100 of them overdue: 100 active alerts) and syncs it
    all; its live Python heap between steps stays within 96 KiB (TLS
    excluded: it is Node's here).  The settlement watchdog's sales live in
    the sale index on flash (firmware/sale_index_flash.py), not in RAM: the
    heap stays flat while the sales are taken; the peak is the alert
    burst's messages waiting to go up (bounded by the board's max_alerts)."""
    params, bridge = _world(sqlite_world, tmp_path, "mcu-heap-1")
    params["records"] = BACKLOG
    # 1 boot step, the sales (10 a step, about 3 records a sale), then sync steps to spare.
    board = run_board(params, bridge, timeout=840, script_path=HEAP_SCRIPT, steps=1 + 40 + 400)
    print("heap:", board)
    assert board["PHASE"] == "done", board
    assert int(board["BACKLOG"]) >= BACKLOG and int(board["ACKED"]) >= int(board["BACKLOG"])
    assert board["FIRING"] == "100" and board["LED"] == "1"
    peak = int(board["HEAP_PEAK"]["HEAP_PEAK"])
    assert 0 < int(board["HEAP_AFTER_SALES"]) <= peak <= HEAP_BUDGET, board
    store = sqlite_world.store()
    assert store.stats()["receipts"] == int(board["SOLD"])
