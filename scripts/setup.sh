#!/usr/bin/env bash
# One-time set-up on a fresh Debian or Ubuntu machine (or CI): system
# packages, a virtual environment with the package, and the MicroPython
# WebAssembly port for the core's cross-interpreter tests.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# `daozhang device flash` and its tests: partition tables, FAT and ext4 images,
# block maps (bmaptool makes the test maps), mtools as a second FAT reader.
PATH="$PATH:/usr/sbin:/sbin"
command -v sfdisk >/dev/null 2>&1 || need_apt+=(fdisk)
command -v mkfs.fat >/dev/null 2>&1 || need_apt+=(dosfstools)
command -v debugfs >/dev/null 2>&1 || need_apt+=(e2fsprogs)
command -v mdir >/dev/null 2>&1 || need_apt+=(mtools)
command -v bmaptool >/dev/null 2>&1 || need_apt+=(bmap-tools)
command -v xz >/dev/null 2>&1 || need_apt+=(xz-utils)
command -v zstd >/dev/null 2>&1 || need_apt+=(zstd)
# libfaketime: CI reruns the date-sensitive tests with the clock a year ahead (scripts/moved_clock.sh).
compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null || [ -f /usr/lib/faketime/libfaketime.so.1 ] \
    || need_apt+=(libfaketime)
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
# A CJK font: the zh-CN report is rendered in headless Chromium (tests/reconcile).
# (grep without -q: under pipefail an early exit would fail fc-list with SIGPIPE)
[ -d /usr/share/fonts/opentype/noto ] && fc-list 2>/dev/null | grep "Noto Sans CJK" >/dev/null \
    || need_apt+=(fonts-noto-cjk)

if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[test]'
    touch "$stamp"
fi

# The merchant-facing translations (i18n/): .po in git, .mo built here.
"$VENV/bin/pybabel" -q compile -d i18n/locales -D daozhang

if [ ! -d tests/mp/node_modules/@micropython/micropython-webassembly-pyscript ]; then
    npm install --prefix tests/mp --no-audit --no-fund --silent
fi
# micropython-lib's umqtt.simple for the firmware's MQTT tests on that port (pinned, SHA-256 checked).
"$VENV/bin/python" tests/mp/fetch_mplib.py >/dev/null
echo "setup: ready ($VENV)"
