"""Device outputs: status file, display and console lines, gpiod LED and
buzzer patterns; absent or failing outputs are skipped, never raise."""

import io
import json
import types

from daozhang.agent.core.settlement.alerts import AlertMachine
from daozhang.agent.outputs import DeviceOutputs


def fake_gpiod(log, fail_on_set=False):
    """Just enough of libgpiod v2's python API, recording every line value."""
    line = types.SimpleNamespace(
        Direction=types.SimpleNamespace(OUTPUT="out"),
        Value=types.SimpleNamespace(ACTIVE=1, INACTIVE=0))

    class Request:
        def __init__(self, chip, consumer, config):
            self.consumer = consumer
            log.append(("request", chip, consumer, sorted(config)))

        def set_value(self, offset, value):
            if fail_on_set:
                raise OSError(5, "Input/output error")
            log.append((self.consumer, offset, value))

        def release(self):
            log.append(("release", self.consumer))

    return types.SimpleNamespace(
        line=line, LineSettings=lambda **kw: kw,
        request_lines=lambda chip, consumer, config: Request(chip, consumer, config))


def board(tmp_path, chip):
    return {"outputs": {"status_file": str(tmp_path / "status.json"),
                        "display_file": str(tmp_path / "display.txt"), "console": True,
                        "led": {"chip": chip, "line": 17},
                        "buzzer": {"chip": chip, "line": 27}}}


def firing_machine():
    m = AlertMachine()
    acts = m.observe({"kind": "settlement_overdue", "key": "P1", "active": True, "at": 0,
                      "amount": 125000, "escalate_at": 100})
    return m, acts


def test_status_display_console_led_and_buzzer(tmp_path):
    chip = tmp_path / "gpiochip0"
    chip.write_text("")
    log, console = [], io.StringIO()
    out = DeviceOutputs(board(tmp_path, str(chip)), console=console, gpiod_module=fake_gpiod(log))
    assert out.skipped == {}
    m, acts = firing_machine()
    out.show(m.status_summary())
    out.notify(acts)
    status = json.loads((tmp_path / "status.json").read_text(encoding="utf-8"))
    assert status["lines"] == ["1 payment overdue, ¥1,250.00"] and status["worst"] == "warning"
    assert (tmp_path / "display.txt").read_text(encoding="utf-8") == "1 payment overdue, ¥1,250.00\n"
    assert console.getvalue() == "daozhang alerts: 1 payment overdue, ¥1,250.00\n"
    out.show(m.status_summary())  # unchanged text: no second console line
    assert console.getvalue().count("\n") == 1
    # warning: slow blink (200 ms on in 2 s); the buzzer plays on-off-on, then stops
    for now_ms in range(0, 2000, 100):
        out.refresh(now_ms)
    led = [v for who, *rest in log if who == "daozhang-led" for v in [rest[1]]]
    assert led == [1, 0]  # written on change only
    buzz = [rest[1] for who, *rest in log if who == "daozhang-buzzer"]
    assert buzz == [1, 0, 1, 0]
    out.close()
    assert ("release", "daozhang-led") in log


def test_absent_outputs_are_skipped(tmp_path):
    console = io.StringIO()
    out = DeviceOutputs(board(tmp_path, str(tmp_path / "no-such-chip")), console=console,
                        gpiod_module=fake_gpiod([]))
    assert set(out.skipped) == {"led", "buzzer"} and "does not exist" in out.skipped["led"]
    out2 = DeviceOutputs({}, console=console)  # a board with no outputs table
    m, acts = firing_machine()
    for o in (out, out2):
        o.show(m.status_summary())
        o.notify(acts)
        o.refresh(0)
        o.close()
    assert "1 payment overdue" in console.getvalue()


def test_failing_outputs_never_raise(tmp_path):
    chip = tmp_path / "gpiochip0"
    chip.write_text("")
    cfg = board(tmp_path, str(chip))
    cfg["outputs"]["status_file"] = str(tmp_path / "no-dir" / "status.json")
    out = DeviceOutputs(cfg, console=io.StringIO(), gpiod_module=fake_gpiod([], fail_on_set=True))
    m, acts = firing_machine()
    out.show(m.status_summary())
    out.notify(acts)
    out.refresh(0)
    out.refresh(100)
    assert "failed" in out.skipped["status_file"] and "failed" in out.skipped["led"]
    assert out.led is None and out.buzzer is None
