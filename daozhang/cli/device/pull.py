"""`daozhang device pull`: the technician copies a terminal's journal and checks it."""

import json
import os
import sys

import click

from daozhang.agent.core.errors import DaozhangError, FindingError, LocalError
from daozhang.host_tools.usb import pull as pulling
from daozhang.host_tools.usb.service_client import (
    DeviceRefused, SerialTransport, ServiceClient, load_technician_key)

EPILOG = ("Exit codes: 0 the journal verified intact, 1 verification found problems "
          "(tampering, damage), 2 a usage or I/O error (a lost link: run the same command "
          "again to resume).")


class _Output:
    """Human lines (and a rich bar on a TTY), or one JSON object per line."""

    def __init__(self, as_json):
        self.as_json = as_json
        self._bar = None
        self._task = None
        self._last_pct = -1

    def line(self, text, **fields):
        if self.as_json:
            fields.setdefault("event", "message")
            fields.setdefault("message", text)
            click.echo(json.dumps(fields, sort_keys=True, default=_hex))
            sys.stdout.flush()
        else:
            click.echo(text)

    def start_progress(self, description):
        if self.as_json or not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TimeRemainingColumn, TransferSpeedColumn)
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                             TransferSpeedColumn(), TimeRemainingColumn(),
                             console=Console(stderr=True), transient=True)
        self._bar.start()
        self._task = self._bar.add_task(description, total=None)

    def progress(self, done, total):
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total)
        elif self.as_json:
            pct = done * 100 // total if total else 100
            if pct != self._last_pct:
                self._last_pct = pct
                self.line("", event="progress", done=done, total=total)

    def stop_progress(self):
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _hex(value):
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return str(value)


def _device_pubkeys(paths, info):
    """What the verifier trusts: PEM paths it loads itself, or the device's reported raw key."""
    if paths:
        return list(paths), "the given --device-pubkey"
    reported = info.get("device_pubkey") if info else None
    if isinstance(reported, bytes) and len(reported) == 32:
        return [reported], "the key the device reported (pass --device-pubkey to check against the enrolled key)"
    raise LocalError("no device public key to verify against: pass --device-pubkey DEVICE.pub")


def _describe(finding):
    if hasattr(finding, "describe"):
        return finding.describe()
    return "seq %s at offset %s: %s" % (getattr(finding, "seq", None), getattr(finding, "offset", None),
                                        getattr(finding, "message", finding))


def _report(out, result, report, key_note):
    findings = [{"seq": getattr(f, "seq", None), "offset": getattr(f, "offset", None),
                 "message": getattr(f, "message", str(f)), "kind": getattr(f, "kind", None),
                 "informational": bool(getattr(f, "informational", False))} for f in report.findings]
    if out.as_json:
        out.line("", event="result", intact=bool(report.ok), findings=findings,
                 verified_with=key_note, **result.as_dict())
    else:
        how = "resumed, " if result.resumed else ""
        out.line("pulled %d bytes into %s (%s%d segments pulled, %d unchanged and skipped)"
                 % (result.pulled_bytes, result.path, how, result.pulled_segments, result.skipped_segments))
        if report.ok:
            out.line("journal intact: verified with %s" % key_note)
            for f in report.findings:  # only informational ones, e.g. a crash's uncommitted tail
                out.line("  note: %s" % _describe(f))
        else:
            out.line("journal NOT intact: %d finding(s):" % len(findings))
            for f in report.findings:
                out.line("  %s" % _describe(f))
    if not report.ok:
        raise FindingError("journal NOT intact: %d finding(s); see above" % len(findings))


@click.command(epilog=EPILOG)
@click.option("--port", metavar="DEV", help="The terminal's USB serial device (e.g. /dev/ttyACM0) or a pyserial URL.")
@click.option("--image", metavar="PATH", type=click.Path(exists=True, dir_okay=False, allow_dash=False),
              help="Read the journal from an SD card image or block device instead of the port.")
@click.option("--offset", default=0, show_default=True, type=click.IntRange(min=0),
              help="With --image: byte offset of the journal (its partition) in the image.")
@click.option("--key", "key_path", metavar="TECH.key", type=click.Path(dir_okay=False),
              help="Technician private key (from `daozhang keys new`); without it only info answers.")
@click.option("--out", "out_dir", required=True, metavar="DIR", type=click.Path(file_okay=False),
              help="Directory for journal.bin, info, alerts, health and the resume state.")
@click.option("--device-pubkey", "pubkey_paths", multiple=True, metavar="DEVICE.pub",
              help="Verify against this device public key (repeatable); default: the key the device reports.")
@click.option("--timeout", default=3.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds to wait for an answer before re-sending a request.")
@click.option("--json", "as_json", is_flag=True, help="Progress and result as JSON lines on stdout.")
def pull(port, image, offset, key_path, out_dir, pubkey_paths, timeout, as_json):
    """Pull a terminal's journal over USB (or from an SD image) and verify it.

    Resumes where a cut-short run stopped and skips segments already pulled
    whose SHA-256 still matches, so after the cable is pulled just run the
    same command again.
    """
    out = _Output(as_json)
    if bool(port) == bool(image):
        raise click.UsageError("give exactly one of --port DEV or --image PATH")
    try:
        if image:
            source = pulling.ImageSource(image, offset)
            info = None
            what = image
        else:
            source, info = _open_port(port, key_path, out_dir, timeout, out)
            what = "device %s on %s" % (source.device_id, port)
        try:
            out.line("pulling %d bytes (%d segments of %d) from %s"
                     % (source.size, source.segment_count, source.segment_size, what),
                     event="start", size=source.size, source=what)
            out.start_progress("pulling journal")
            try:
                result = pulling.pull_journal(source, out_dir, out.progress)
            finally:
                out.stop_progress()
        finally:
            source.close()
        pubkeys, key_note = _device_pubkeys(pubkey_paths, info)
        report = pulling.verify_pulled_journal(result.path, pubkeys)
        _report(out, result, report, key_note)
    except DaozhangError as exc:
        if as_json:
            out.line(str(exc), event="error", exit_code=exc.exit_code)
        raise


def _open_port(port, key_path, out_dir, timeout, out):
    key = load_technician_key(key_path) if key_path else None
    transport = SerialTransport(port)
    try:
        client = ServiceClient(transport, timeout=timeout)
        info = client.info()
        os.makedirs(out_dir, exist_ok=True)
        pulling.write_json(os.path.join(out_dir, "info.json"), info)
        if key is None:
            raise LocalError("no technician key: without one the device answers only info "
                             "(saved to %s/info.json); pass --key TECH.key" % out_dir)
        try:
            client.authenticate(key)
        except DeviceRefused as exc:
            if exc.code == "auth_failed":
                raise LocalError("device %s refused this technician key: it was not enrolled at "
                                 "provisioning (--technician-pubkey)" % info.get("device_id"))
            raise
        return pulling.PortSource(client, info), info
    except BaseException:
        transport.close()
        raise
