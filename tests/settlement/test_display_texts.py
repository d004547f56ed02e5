"""The terminal's display in the merchant's language (agent/alert_texts.py):
the same groups as the core's English lines, worded from the zh-CN catalog,
with money and ages; DeviceOutputs writes them to the display and status
file when built with the profile's locale."""

import io
import json

from daozhang.agent.alert_texts import display_text
from daozhang.agent.core.settlement.alerts import HOUR, AlertMachine
from daozhang.agent.outputs import DeviceOutputs
from daozhang.i18n import texts_for

ZH = texts_for("zh-CN")


def machine_with_alerts():
    m = AlertMachine()
    for key in ("P1", "P2", "P3"):
        m.observe({"kind": "settlement_overdue", "key": key, "active": True, "at": 0,
                   "amount": 41667 if key != "P3" else 41666})
    m.observe({"kind": "deposit_short", "key": "2027-01-05", "active": True, "at": 0,
               "amount": 2000, "detail": {"day": "2027-01-05"}})
    m.observe({"kind": "clock_untrusted", "key": "clock", "active": True, "at": 0})
    m.tick(0)
    return m


def test_zh_cn_display_words_every_group_with_money_and_age():
    m = machine_with_alerts()
    now = 5 * 24 * HOUR
    summary = m.status_summary(now)
    # The core's English line (for the backend), unchanged:
    assert "3 payments overdue, ¥1,250.00" in summary["display"]
    text = display_text(summary, ZH, now)
    assert "3 笔款项逾期未到，¥1,250.00，最早 5天" in text.split(" | ")
    assert "1 笔结算款到账不足，¥20.00，最早 5天" in text.split(" | ")
    assert "时钟不可信：到期判断暂停" in text.split(" | ")
    assert "payment" not in text and "clock" not in text
    assert display_text(AlertMachine().status_summary(now), ZH, now) == "所有款项正常"
    # English without an age is the core's own line.
    assert display_text(summary, texts_for("en")) == summary["display"]


def test_outputs_show_the_merchant_language_on_display_and_status_file(tmp_path):
    console = io.StringIO()
    board = {"outputs": {"status_file": str(tmp_path / "status.json"),
                         "display_file": str(tmp_path / "display.txt"), "console": True}}
    out = DeviceOutputs(board, console=console, texts=ZH)
    m = machine_with_alerts()
    out.show(m.status_summary(HOUR), HOUR)
    shown = (tmp_path / "display.txt").read_text(encoding="utf-8")
    # Worst first, as the core orders the groups: the critical deposit alert leads.
    assert shown.startswith("1 笔结算款到账不足，¥20.00") and "3 笔款项逾期未到" in shown
    status = json.loads((tmp_path / "status.json").read_text(encoding="utf-8"))
    assert status["locale"] == "zh-CN" and status["display"] == shown.rstrip("\n")
    assert status["firing"] == 5 and status["worst"] == "critical"
    assert "所有款项正常" not in console.getvalue() and "笔" in console.getvalue()
