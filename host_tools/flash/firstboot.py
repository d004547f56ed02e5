"""The two texts the terminal runs on its first boot: a shell script and a unit.

How it is started, the way rpi-imager does it: cmdline.txt gets
`systemd.run=<boot>/daozhang/firstboot.sh systemd.run_success_action=reboot
systemd.unit=kernel-command-line.target`; systemd runs the script once,
the script takes those words out of cmdline.txt again and the terminal
reboots into the installed, enabled agent.

The script installs the agent from the wheelhouse placed beside it
(`pip install --no-index`: the terminal may have no internet), moves the
provisioned state dir off the FAT partition (which has no permissions) into
the root file system with the key at 0600, installs the systemd unit and
enables it.  DAOZHANG_ROOT=<dir> runs it against a scratch root instead of /
(the tests do; users and chown are then skipped).
"""

CMDLINE_WORDS = ("systemd.run={script} systemd.run_success_action=reboot "
                 "systemd.unit=kernel-command-line.target")

SCRIPT = r"""#!/bin/sh
# daozhang first boot: written by `daozhang device flash`; runs once, then
# removes itself from cmdline.txt.  DAOZHANG_ROOT=DIR runs it against DIR.
set -eu
ROOT="${DAOZHANG_ROOT:-}"
HERE="$(cd "$(dirname "$0")" && pwd)"
BOOT="$(dirname "$HERE")"
STATE_DIR="%(state_dir)s"
UNIT="daozhang-agent.service"
PYTHON="${DAOZHANG_PYTHON:-python3}"
log() { echo "daozhang-firstboot: $*" >&2; }

if [ -z "$ROOT" ]; then
    getent group daozhang-pos >/dev/null || groupadd --system daozhang-pos
    id daozhang >/dev/null 2>&1 || useradd --system --user-group --home-dir "$STATE_DIR" \
        --shell /usr/sbin/nologin daozhang
    for g in dialout gpio daozhang-pos; do
        getent group "$g" >/dev/null && usermod -a -G "$g" daozhang
    done
fi

if [ -d "$HERE/state" ]; then
    log "installing the provisioned state into $STATE_DIR"
    install -d -m 0700 "$ROOT$STATE_DIR"
    for f in "$HERE/state/"*; do
        name="$(basename "$f")"
        case "$name" in
            *.key) mode=0600 ;;
            *) mode=0640 ;;
        esac
        install -m "$mode" "$f" "$ROOT$STATE_DIR/$name"
    done
    [ -n "$ROOT" ] || chown -R daozhang:daozhang "$STATE_DIR"
    sync
    # The FAT boot partition is readable by anyone: no key stays there.
    rm -rf "$HERE/state"
fi

log "installing the agent offline from $HERE/wheels"
"$PYTHON" -m venv "$ROOT/opt/daozhang"
"$ROOT/opt/daozhang/bin/python" -m pip install --quiet --no-index --find-links "$HERE/wheels" daozhang

install -d "$ROOT/etc/systemd/system"
install -m 0644 "$HERE/$UNIT" "$ROOT/etc/systemd/system/$UNIT"
if command -v systemctl >/dev/null 2>&1 && [ -z "$ROOT" ]; then
    systemctl enable "$UNIT"
else
    # What `systemctl enable` does for WantedBy=multi-user.target.
    install -d "$ROOT/etc/systemd/system/multi-user.target.wants"
    ln -sfn "/etc/systemd/system/$UNIT" "$ROOT/etc/systemd/system/multi-user.target.wants/$UNIT"
fi

sed -i 's| systemd\.run=[^ ]*daozhang/firstboot\.sh systemd\.run_success_action=reboot systemd\.unit=kernel-command-line\.target||' \
    "$BOOT/cmdline.txt"
date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ > "$HERE/firstboot.done"
log "done: $UNIT enabled"
"""

UNIT = """# The daozhang terminal agent, installed by daozhang's first-boot step
# (settings as examples/systemd/daozhang-agent.service).
[Unit]
Description=daozhang terminal agent: signed journal of every card payment
After=local-fs.target time-sync.target
Wants=time-sync.target

[Service]
Type=notify
NotifyAccess=main
ExecStart=/opt/daozhang/bin/daozhang agent run --config %(state_dir)s/agent.toml
# Two malloc arenas, not one per busy thread; fixed mmap and trim
# thresholds (agent/malloc_arenas.py).
Environment=MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=262144
User=daozhang
Group=daozhang
SupplementaryGroups=daozhang-pos dialout gpio
RuntimeDirectory=daozhang
RuntimeDirectoryMode=0750
StateDirectory=%(state_name)s
StateDirectoryMode=0700
# Fed only after the journal writer commits (traffic or a heartbeat commit
# every %(heartbeat_s)d s): a hung writer is restarted.
WatchdogSec=%(watchdog_s)d
Restart=on-failure
RestartSec=2
KillSignal=SIGTERM
TimeoutStopSec=30
TimeoutStartSec=120
StandardError=journal
SyslogIdentifier=daozhang-agent
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
NoNewPrivileges=true

[Install]
WantedBy=multi-user.target
"""


def render_script(state_dir):
    return SCRIPT % {"state_dir": state_dir}


def render_unit(state_dir, heartbeat_s):
    name = state_dir.rstrip("/").rsplit("/", 1)[-1]
    return UNIT % {"state_dir": state_dir, "state_name": name, "heartbeat_s": heartbeat_s,
                   "watchdog_s": 3 * heartbeat_s}


def add_to_cmdline(text, script):
    """cmdline.txt is one line: append the words once."""
    words = CMDLINE_WORDS.format(script=script)
    line = text.strip()
    if words in line:
        return line + "\n"
    return line + " " + words + "\n"
