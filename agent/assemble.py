"""The agent's one assembly: every part of a running daemon, every thread
and every callback between them, built from agent.toml in the order the
data flows (docs/DESIGN.md "The agent's assembly").

    POS --intake threads--> journal --on_commit--> settlement watchdog
        (its thread) --alerts--> sync link (MQTT thread) --> backend
    backend --acks--> sync link --settlements_hook--> settlement watchdog
    technician --USB--> service port (its thread); journal scrub (its thread)

Two loops close here, each with one named call: the intake is built before
the watchdog that listens to it and raises into it (`Forward.bind`), and the
sync link is built with the watchdog's methods while the watchdog publishes
through the link (`SettlementPlugin.attach`).  agent/daemon.py starts the
parts in list order, ticks them, and stops them in reverse.
"""

from daozhang import __version__
from daozhang.agent.core.clock_guard import ClockGuard
from daozhang.agent.core.errors import JournalDamaged, JournalFull, LocalError, StorageError
from daozhang.agent.core.journal import record
from daozhang.agent.intake_service import IntakeService
from daozhang.agent.journal_damaged import DamagedJournalService
from daozhang.agent.journal_file import JournalFile
from daozhang.agent.journal_scrub import DEFAULT_RATE, ScrubPlugin
from daozhang.agent.key_rotation import finish_interrupted_rotation
from daozhang.profile import load_profile
from daozhang.agent.service_port_plugin import ServicePortPlugin
from daozhang.agent.settlement_alerts import alerts_file_path
from daozhang.agent.settlement_plugin import SettlementPlugin
from daozhang.signing import FileSigner
from daozhang.agent.sync_plugin import build_damaged_link, build_link
from daozhang.i18n import texts_for

# The software's build date (UTC midnight): a wall clock before it is wrong.
BUILD_DATE = "2026-11-25"
BUILD_MS = 1795564800000


class Agent:
    """What assemble() built: the parts the daemon serves with, and `parts`,
    the threads it starts in this order (start(), stop(), alive() each)."""

    def __init__(self, service, alert, parts, journal=None, clock=None, damaged=None):
        self.service = service        # IntakeService, or DamagedJournalService
        self.alert = alert            # alert(kind, severity, detail) for the daemon's own alerts
        self.parts = parts
        self.journal = journal
        self.clock = clock
        self.damaged = damaged        # JournalDamaged when the journal refused to open


class Forward:
    """A callback to a part built later in assemble() (the parts form loops).
    Calls `before` until bind(target); bound once."""

    def __init__(self, name, before):
        self.name = name
        self._target = before
        self._bound = False

    def bind(self, target):
        if self._bound:
            raise LocalError("%s is already bound: the assembly binds each loop once" % self.name)
        self._target, self._bound = target, True

    def __call__(self, *args):
        return self._target(*args)


def assemble(config, log, now_ms):
    """The running agent for `config` (agent/config.py), or its refusing form
    when the journal is damaged (assemble_damaged)."""
    profile = load_profile(config["profile"])
    try:
        journal = open_journal(config, log)                   # recovery + a boot record
    except JournalDamaged as error:
        return assemble_damaged(config, error, log)
    stats = journal.stats()
    log("journal_open", path=config["journal"]["path"], next_seq=stats["next_seq"],
        fill="%.3f" % stats["fill"], outage=stats["outage"], version=__version__)

    alert = Forward("alert", before=log_alert(log))           # -> the watchdog's alert machine
    committed = Forward("committed", before=lambda seq, payload, data: None)
    # `clock` is built on the next line from this intake's index; the intake
    # asks it only once serving.
    service = IntakeService(journal, profile=profile, log=log, alert_hook=alert,
                            on_commit=committed, now_ms=now_ms, clock_trusted=lambda: clock.trusted)
    clock = ClockGuard(BUILD_MS, service.last_wall_before(getattr(journal.clock, "boot_id", None)))
    observe_clock(clock, journal, now_ms(), log)              # journaled before the watchdog replays

    # Runs before the link: release_floor must answer when the link adopts
    # its saved ack anchor (which moves the journal's cursors).
    watch = SettlementPlugin(journal, profile, config["device_id"], alerts_file_path(config["path"]),
                             log, now_ms, clock_trusted=lambda: clock.trusted,
                             listeners_floor=service.listeners_floor, outputs=config.get("outputs"),
                             texts=texts_for(profile["locale"]))
    committed.bind(logged(watch.on_transaction, log))
    alert.bind(watch.on_hook_alert)

    link = build_link(config, journal, log,                   # None without [mqtt]
                      alert=watch.on_hook_alert, release_floor=watch.release_floor,
                      settlements_hook=watch.on_settlements, deposit_hook=watch.on_deposit,
                      status_extra=watch.status_summary)
    watch.attach(link)

    parts = [watch] + ([link] if link is not None else [])
    device = config.get("service_port", {}).get("device", "")
    if device:
        parts.append(ServicePortPlugin(device, config, journal, log, current_alerts=watch.current_alerts,
                                       clock_trusted=lambda: clock.trusted,
                                       link_health=link.health if link is not None else None))
    rate = config.get("journal", {}).get("scrub_bytes_per_s", DEFAULT_RATE)
    parts.append(ScrubPlugin(journal, log, alert, rate))
    return Agent(service, alert, parts, journal=journal, clock=clock)


def assemble_damaged(config, error, log):
    """A journal that refuses to open: sales refused, the alert logged and
    carried to the backend by the degraded link (agent/damaged_link.py)."""
    link = build_damaged_link(config, log)                    # None without [mqtt]

    def alert(kind, severity, detail):
        log_alert(log)(kind, severity, detail)
        if link is not None:
            link.publish_alert({"kind": kind, "severity": severity,
                                "state": detail.get("state", "firing"), "detail": detail})

    return Agent(DamagedJournalService(config["device_id"], error), alert,
                 [link] if link is not None else [], damaged=error)


def open_journal(config, log):
    path = config["journal"]["path"]
    # A key rotation cut short by a crash is finished or undone before
    # anything is signed: the journal must never be signed by a key it
    # has not announced (agent/key_rotation.py).
    outcome = finish_interrupted_rotation(config["key"], path)
    if outcome is not None:
        log("key_rotation_" + outcome, level="warning")
    try:
        return JournalFile.open(path, FileSigner(config["key"]))
    except JournalFull as exc:
        # Even the boot record does not fit.  Serve anyway, without it: the
        # POS gets a clear `journal_full` instead of a dead socket, and the
        # sync loop can still release records.  A restart loop would not help.
        log("journal_full", level="critical", detail=str(exc), at="open")
        log_alert(log)("journal_full", "critical", {"detail": "at start: " + str(exc)})
        return JournalFile.open(path, FileSigner(config["key"]), boot=False)


def observe_clock(clock, journal, now, log):
    """Feed the clock guard; journal a clock record when its trust changes."""
    event = clock.observe(now)
    if event is None:
        return
    level = "info" if event["event"] == "trusted" else "warning"
    log("clock_" + event["event"], level=level, wall_ms=event["wall_ms"],
        last_wall_ms=event["last_wall_ms"])
    try:
        journal.append(record.TYPE_CLOCK, event)
    except (JournalFull, StorageError) as exc:
        log("clock_record_failed", level="error", error=str(exc))


def log_alert(log):
    """alert(kind, severity, detail) that only logs: before the alert machine exists."""
    def alert(kind, severity, detail):
        log("alert", level=severity, kind=kind, **{k: v for k, v in detail.items()})
    return alert


def logged(listener, log):
    """`listener` with its exceptions logged, not raised into the intake's reply path."""
    def call(seq, payload, data):
        try:
            listener(seq, payload, data)
        except Exception as exc:
            log("listener_error", level="error", error=type(exc).__name__)
    return call
