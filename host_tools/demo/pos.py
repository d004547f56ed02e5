"""The demo's simulated POS: card sales at a steady pace, through the real
intake socket with the vendorable client (daozhang/client.py).

Every sale is valid and carries only a masked card (first 6, last 4), as a
real POS must; its `time` is the demo clock's (clock.py), so deadlines
fall within seconds.  Amounts, cards and codes come from a seeded generator:
the same seed gives the same sales.  `make_sale` is pure; `Pos` paces it.
"""

import datetime
import random
import threading

from daozhang.client import AgentUnavailable, Client, Refused
from daozhang.host_tools.demo.events import DemoEvent

SHANGHAI = datetime.timezone(datetime.timedelta(hours=8))   # the demo profile's zone: no DST
BINS = ("622588", "621700", "622202", "625807", "436742", "524047")
CARD_TYPES = (("debit", 7), ("credit", 3))                  # weights


def rfc3339(ms, tz=SHANGHAI):
    return datetime.datetime.fromtimestamp(ms / 1000.0, tz).isoformat(timespec="seconds")


def money(minor, symbol="¥"):
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return "%s%s%s.%02d" % (sign, symbol, format(minor // 100, ","), minor % 100)


def make_sale(number, now_ms, rng, profile, run_id):
    """Sale number `number` (1-based) of this run, as the POS sends it."""
    card_type = rng.choices([c for c, _ in CARD_TYPES], weights=[w for _, w in CARD_TYPES])[0]
    card = rng.choice(BINS) + "******" + "%04d" % rng.randrange(10000)
    # Mostly a bowl of noodles, sometimes a banquet.
    amount = rng.randrange(1800, 9800) if rng.random() < 0.8 else rng.randrange(20000, 380000)
    return {
        "kind": "sale",
        "pos_txn_id": "DEMO-%s-%05d" % (run_id, number),
        "time": rfc3339(now_ms),
        "amount": amount,
        "currency": profile.get("currency") or "CNY",
        "card": card,
        "card_type": card_type,
        "auth_code": "%06d" % rng.randrange(1000000),
        "rrn": "%s%06d" % (run_id[-6:].rjust(6, "0"), number),
        "merchant_id": profile["merchant_id"],
        "terminal_id": profile["terminal_id"],
        "mcc": profile["mcc"],
        "settlement": profile["settlement"]["mode"],
    }


class Pos(threading.Thread):
    """Sells `rate` sales per second until `stop()`; reports each receipt or
    refusal as a DemoEvent to `emit`, and hands committed sales to
    `on_sale(txn, receipt)` (the acquirer)."""

    def __init__(self, socket_path, clock, profile, rate, emit, on_sale, seed=2026, run_id=None):
        super().__init__(name="demo-pos", daemon=True)
        self.socket_path = socket_path
        self.clock = clock
        self.profile = profile
        self.interval = 1.0 / rate
        self.emit = emit
        self.on_sale = on_sale
        self.rng = random.Random(seed)
        self.run_id = run_id or "%06d" % random.Random().randrange(1000000)
        self.number = 0
        self.failure = None
        self._halt = threading.Event()

    def stop(self):
        self._halt.set()

    def run(self):
        client = Client(self.socket_path, timeout=15)
        try:
            while not self._halt.is_set():
                self.number += 1
                self._sell(client, make_sale(self.number, self.clock.now_ms(), self.rng,
                                             self.profile, self.run_id))
                self._halt.wait(self.interval)
        except AgentUnavailable as exc:
            if not self._halt.is_set():
                self.failure = str(exc)
                self.emit(DemoEvent("warn", "POS: agent unavailable: %s" % exc, {}))
        finally:
            client.close()

    def _sell(self, client, txn):
        try:
            receipt = client.submit(txn)
        except Refused as exc:
            self.emit(DemoEvent("txn", "REFUSED %s %s: %s" % (txn["pos_txn_id"], money(txn["amount"]),
                                                              exc.code),
                                {"refused": True, "code": exc.code}))
            return
        self.emit(DemoEvent("txn", "sale %s %9s %-6s %s  journal seq %d, receipt %s…"
                            % (txn["pos_txn_id"].rsplit("-", 1)[-1], money(txn["amount"]),
                               txn["card_type"], txn["card"], receipt["seq"],
                               receipt["receipt_code"][:14]),
                            {"seq": receipt["seq"], "amount": txn["amount"],
                             "pos_txn_id": txn["pos_txn_id"]}))
        self.on_sale(txn, receipt)
