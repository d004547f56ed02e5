"""The demo's display: rich Live on a terminal, one line per event otherwise.

Both views take DemoEvents (events.py) through `show(event, elapsed)`
and the Tally for the header; `summary_lines(summary)` is the text both
print at the end.  Plain lines look like

    [  12.4s] alert   firing    settlement_overdue DEMO-123456-00003

so a CI log or `| grep alert` reads well.
"""

import collections
import threading

from daozhang.host_tools.demo.pos import money
from daozhang.i18n import texts_for

STYLES = {"setup": "dim", "txn": "white", "sync": "cyan", "settle": "blue", "check": "magenta",
          "alert": "bold red", "warn": "yellow", "info": "green",
          "display": "bold yellow"}


ENDINGS = {"duration": "the duration ended", "Ctrl-C": "stopped by Ctrl-C",
           "SIGTERM": "stopped by SIGTERM", "failure": "STOPPED BY A FAILURE"}


def event_line(event, elapsed):
    return "[%6.1fs] %-7s %s" % (elapsed, event.kind, event.text)


def summary_lines(s):
    """The human summary of a Tally.summary() plus run facts."""
    disc = ", ".join("%s %d" % (k, v) for k, v in s["discrepancies"].items() if v) or "none seen"
    injected = ", ".join("%s %d" % (k, v) for k, v in s["injected"].items()) or "-"
    lines = [
        "daozhang demo: %s after %.0f s (clock: %s)" % (ENDINGS.get(s.get("reason"), "ended"),
                                                        s.get("seconds", 0), s.get("clock", "")),
        "  transactions   %d sales (%s), %d refused" % (s["transactions"], money(s.get("amount", 0)),
                                                       s["refused"]),
        "  synced         %d of them stored and acked by the backend" % s["synced"],
        "  settled        %d settlement rows matched and sent to the terminal (%d rows in %d "
        "files)" % (s["settled"], s["settlement_rows"], s.get("settlement_files", 0)),
        "  alerts         %d fired, %d resolved, %d still firing" % (s["alerts_fired"],
                                                                    s["alerts_resolved"],
                                                                    s["alerts_firing"]),
        "  discrepancies  %s" % disc,
        "  acquirer sent  %s" % injected,
    ]
    if s.get("stopped"):
        lines.append("  stopped        %s" % "; ".join(s["stopped"]))
    if s.get("workdir"):
        lines.append("  files          %s" % s["workdir"])
    return lines


class PlainView:
    """One event per line on `out` (not a TTY: CI, a pipe, a file)."""

    def __init__(self, out, tally=None):
        self.out = out
        self._lock = threading.Lock()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def show(self, event, elapsed):
        with self._lock:
            self.out.write(event_line(event, elapsed) + "\n")
            self.out.flush()

    def refresh(self, elapsed):
        pass


class LiveView:
    """A rich Live screen: counters, the latest events, the firing alerts."""

    MAX_EVENTS = 18
    # Acks come with every sale; the header counts them ("synced"), so the
    # event list keeps room for sales, settlements and alerts.
    LIST_SKIPS = ("sync",)

    def __init__(self, console, tally, title="daozhang demo", legend="", texts=None):
        from rich.live import Live

        self.console = console
        self.tally = tally
        self.title = title
        self.legend = legend
        # The screen's words in the demo merchant's language (i18n/); English without.
        self.texts = texts or texts_for("en")
        rows = max(self.MAX_EVENTS, (console.size.height or 0) - 16)
        self.events = collections.deque(maxlen=rows)
        self.display = None                          # the terminal's display line
        self.elapsed = 0.0
        self._lock = threading.Lock()
        self.live = Live(self._render(), console=console, refresh_per_second=4, transient=False,
                         get_renderable=self._render)

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        self.live.__exit__(*exc)

    def show(self, event, elapsed):
        with self._lock:
            self.elapsed = elapsed
            if event.kind not in self.LIST_SKIPS:
                self.events.append((elapsed, event))
            if event.kind == "display":
                self.display = event.data.get("line")

    def refresh(self, elapsed):
        with self._lock:
            self.elapsed = elapsed

    def _render(self):
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        _ = self.texts.gettext
        with self._lock:
            s = self.tally.summary()
            head = Table.grid(padding=(0, 3))
            for _column in range(6):
                head.add_column()
            head.add_row("[bold]%s[/] %d" % (_("sales"), s["transactions"]),
                         "[cyan]%s[/] %d" % (_("synced"), s["synced"]),
                         "[blue]%s[/] %d" % (_("settled"), s["settled"]),
                         "[red]%s[/] %d" % (_("alerts fired"), s["alerts_fired"]),
                         "[green]%s[/] %d" % (_("resolved"), s["alerts_resolved"]),
                         "%.0f s" % self.elapsed)
            disc = "  ".join("%s %d" % (k, v) for k, v in s["discrepancies"].items() if v)
            events = Table.grid(padding=(0, 1))
            events.add_column(justify="right", style="dim")
            events.add_column()
            events.add_column(overflow="ellipsis", no_wrap=True)
            for elapsed, event in self.events:
                events.add_row("%.1fs" % elapsed, Text(event.kind, style=STYLES.get(event.kind, "")),
                               Text(event.text, style=STYLES.get(event.kind, "") if event.kind in
                                    ("alert", "warn") else ""))
            lines = [x for x in (self.display or "").split(" | ") if x]
            if lines in (["all payments in order"], [_("all payments in order")]):
                lines = []
            shown = Text("\n".join(lines) or _("all payments in order"),
                         style="bold red" if lines else "green")
            parts = [Panel(head, title=self.title, subtitle=self.legend),
                     Panel(events, title=_("what happens (newest last)")),
                     Panel(shown, title=_("the terminal's display (alerts firing, grouped)"))]
            if disc:
                parts.append(Text(_("discrepancies found by the terminal: %(list)s")
                                  % {"list": disc}, style="magenta"))
            parts.append(Text(_("Ctrl-C stops the demo cleanly"), style="dim"))
            return Group(*parts)
