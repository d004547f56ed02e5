"""Device outputs for alerts, per board (CPython adapter).

What the merchant sees or hears, driven by AlertMachine.status_summary()
and the alert actions:

- status file: JSON of the summary, written atomically (tmp + rename), any board;
- console line: one line on a stream when the display text changes, any board;
- display line: the grouped text ("3 payments overdue, ¥1,250.00") in a file
  a display program shows, or on the console when the board has none;
- LED: off when nothing fires, slow blink on warning, fast blink on critical;
- buzzer: a short pattern when an alert fires or escalates to critical.

LED and buzzer use python gpiod (libgpiod v2 bindings) when it is importable
and the chip exists.  Board keys ([outputs] in boards/<board>.toml):

    [outputs]
    status_file = "/run/daozhang/status.json"
    display_file = "/run/daozhang/display.txt"   # omit: display on console
    console = true
    [outputs.led]
    chip = "/dev/gpiochip0"
    line = 17
    active_low = false
    [outputs.buzzer]
    chip = "/dev/gpiochip0"
    line = 27
    active_low = false

An output that is absent, or that fails, is skipped and named once in
`self.skipped`; it never raises into the agent.

Words: the display line and the status file's `lines`/`display` are in the
merchant profile's `locale` (agent/alert_texts.py, i18n/ catalogs) when the
outputs are built with `texts=texts_for(profile["locale"])`; English without.
"""

import json
import os
import sys

from daozhang.agent.alert_texts import local_summary
from daozhang.files import atomic_write

# pattern name -> (period ms, on ms); time drives the blink, no thread needed.
LED_PATTERNS = {"off": (1000, 0), "slow": (2000, 200), "fast": (400, 200)}
# (on, ms) steps
BUZZER_PATTERNS = {"fire": [(1, 150), (0, 100), (1, 150)], "critical": [(1, 600)]}


class GpioLine:
    """One output line through libgpiod v2's python bindings."""

    def __init__(self, gpiod, chip, line, active_low, consumer):
        settings = gpiod.LineSettings(direction=gpiod.line.Direction.OUTPUT,
                                      active_low=bool(active_low))
        self.gpiod = gpiod
        self.line = line
        self.request = gpiod.request_lines(chip, consumer=consumer, config={line: settings})

    def set(self, on):
        value = self.gpiod.line.Value.ACTIVE if on else self.gpiod.line.Value.INACTIVE
        self.request.set_value(self.line, value)

    def close(self):
        self.request.release()


def _import_gpiod():
    try:
        import gpiod
    except ImportError:
        return None
    return gpiod


class DeviceOutputs:
    def __init__(self, board, console=None, gpiod_module=None, texts=None):
        self.config = (board or {}).get("outputs", {})
        self.console = console if console is not None else sys.stderr
        self.texts = texts           # i18n Texts of the merchant's locale, or None: English
        self.skipped = {}
        self.summary = {"worst": None, "lines": [], "display": ""}
        self.last_display = None
        self.buzz_queue = []     # [(on, ms), ...] still to play
        self.buzz_until = None   # when the current buzzer step ends
        self.line_values = {}    # name -> last value written
        self.led = self._line("led", gpiod_module)
        self.buzzer = self._line("buzzer", gpiod_module)

    def _skip(self, name, why):
        if name not in self.skipped:
            self.skipped[name] = why

    def _line(self, name, gpiod_module):
        spec = self.config.get(name)
        if not spec:
            self._skip(name, "not configured for this board")
            return None
        gpiod = gpiod_module or _import_gpiod()
        if gpiod is None:
            self._skip(name, "python gpiod not installed")
            return None
        chip = spec.get("chip", "/dev/gpiochip0")
        if not os.path.exists(chip):
            self._skip(name, "%s does not exist" % chip)
            return None
        try:
            return GpioLine(gpiod, chip, int(spec["line"]), spec.get("active_low", False),
                            "daozhang-" + name)
        except Exception as exc:  # a foreign library at the boundary: never crash the agent
            self._skip(name, "%s line %s: %s" % (chip, spec.get("line"), exc))
            return None

    # -- inputs ------------------------------------------------------------------

    def show(self, summary, now=None):
        """New alert summary (AlertMachine.status_summary()): status file,
        display line and console line, in the merchant's language; `now`
        (Unix ms) adds each group's age, as the core's lines carry it."""
        if self.texts is not None:
            summary = local_summary(summary, self.texts, now)
        self.summary = summary
        text = summary["display"]
        self._write_status(summary)
        if text != self.last_display:
            self.last_display = text
            self._write_display(text)
            if self.config.get("console", True):
                self._safe("console", lambda: print("daozhang alerts: " + text,
                                                    file=self.console, flush=True))

    def notify(self, actions, before=None):
        """Alert actions just emitted: buzz when a kind starts firing, or
        when its group first turns critical.  Per group, not per alert:
        `before` is {kind: severity} of the groups firing before these
        actions, so the 100,000th overdue sale of an outage buzzes nothing."""
        before = before or {}
        for action in actions:
            kind = action["kind"]
            if action["action"] == "firing" and kind not in before:
                self.buzz_queue = list(BUZZER_PATTERNS["fire"])
                self.buzz_until = None
                before[kind] = action["severity"]
            elif action["action"] == "escalated" and before.get(kind) != "critical":
                self.buzz_queue = list(BUZZER_PATTERNS["critical"])
                self.buzz_until = None
                before[kind] = "critical"

    def refresh(self, now_ms):
        """Drive the LED blink and the buzzer; call every 100 ms or so.
        A line is written only when its value changes."""
        if self.led is not None:
            pattern = {"critical": "fast", "warning": "slow"}.get(self.summary["worst"], "off")
            period, on_ms = LED_PATTERNS[pattern]
            self._set("led", now_ms % period < on_ms)
        if self.buzzer is not None and (self.buzz_until is None or now_ms >= self.buzz_until):
            on, duration = self.buzz_queue.pop(0) if self.buzz_queue else (0, None)
            self.buzz_until = now_ms + duration if duration else None
            self._set("buzzer", bool(on))

    def close(self):
        for name in ("led", "buzzer"):
            line = getattr(self, name)
            if line is not None:
                self._safe(name, line.close)

    # -- writers -------------------------------------------------------------------

    def _set(self, name, on):
        if self.line_values.get(name) != on:
            self.line_values[name] = on
            self._safe(name, lambda: getattr(self, name).set(on))

    def _safe(self, name, fn):
        try:
            fn()
        except Exception as exc:  # an output fault must not stop the agent
            self._skip(name, "failed: %s" % exc)
            if name in ("led", "buzzer"):
                setattr(self, name, None)

    def _write_status(self, summary):
        path = self.config.get("status_file")
        if path:
            self._safe("status_file", lambda: atomic_write(
                path, json.dumps(summary, ensure_ascii=False, sort_keys=True) + "\n",
                durable=False))

    def _write_display(self, text):
        path = self.config.get("display_file")
        if path:
            self._safe("display_file", lambda: atomic_write(path, text + "\n", durable=False))
