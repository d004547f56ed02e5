"""The agent when its journal refuses to open (`JournalDamaged`, SPEC 3.9).

Restarting would not help and forking the chain would launder the damage,
so the daemon comes up in a refusing mode instead of crash-looping: the
intake socket answers every transaction with `journal_damaged` (a clear
refusal the POS can show), the device outputs (status file, display,
console, buzzer) show the `journal_damaged` alert, and the event log names
segment, offset and the records affected.  Nothing touches the journal; the
technician runs `daozhang journal verify` and `daozhang journal salvage`,
then restarts the agent.
"""

from daozhang.agent.intake_service import Refused
from daozhang.agent.outputs import DeviceOutputs


class DamagedJournalService:
    """Stands in for IntakeService: every submit is refused, nothing is written."""

    def __init__(self, device_id, error):
        self.dev = device_id
        self.error = error
        self.accepting = True
        self.committed = 0
        self.refused = 0

    def submit(self, txn):
        self.refused += 1
        raise Refused("journal_damaged", "the terminal's journal is damaged and refuses sales (%s); call the "
                      "technician" % self.error.message)

    def commit_many(self, txns):
        """The intake's batch entry point: each refused the same way, and
        nothing to finish."""
        return self.submit_many(txns), lambda: None

    def submit_many(self, txns):
        """Each refused the same way."""
        out = []
        for txn in txns:
            try:
                self.submit(txn)
            except Refused as exc:
                out.append(exc)
        return out

    def flush(self):
        pass


def show_damage(error, log, alert, outputs_config):
    """Log, alert and light the device outputs (agent.toml's [outputs]) for a
    journal that refuses to open."""
    detail = {"segment": error.segment, "offset": error.offset, "first_seq": error.first_seq,
              "last_seq": error.last_seq, "detail": error.message}
    log("journal_damaged", level="critical", segment=error.segment, offset=error.offset)
    alert("journal_damaged", "critical", detail)
    outputs = DeviceOutputs({"outputs": outputs_config or {}})
    line = "journal damaged: sales refused - call the technician"
    outputs.show({"pending": 0, "firing": 1, "critical": 1, "warning": 0, "worst": "critical",
                  "lines": [line], "display": line})
    outputs.notify([{"action": "firing", "kind": "journal_damaged", "severity": "critical"}])
    return outputs
