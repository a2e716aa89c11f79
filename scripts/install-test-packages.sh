#!/bin/sh
# Debian packages the live tests drive, installed idempotently and non-interactively.
# Run as root on Debian (dev.py test does it). Only packages that are missing are
# installed; the system instances are never configured or started by this script.
#   postfix: tests/ops/test_live_postfix.py runs a PRIVATE instance (postfix -c DIR)
#            under tmp; "No configuration" leaves the system instance unconfigured.
set -eu
export DEBIAN_FRONTEND=noninteractive

missing=""
want() {  # want PACKAGE COMMAND: queue PACKAGE when COMMAND is not installed
    command -v "$2" >/dev/null 2>&1 || [ -x "/usr/sbin/$2" ] || missing="$missing $1"
}

want postfix postsuper
want chromium chromium    # tests/report: headless render of the HTML report
# other live tests: append `want PACKAGE COMMAND` lines here

# exipick (a Perl script shipped in exim4-base) reads an Exim spool directly. exim4
# conflicts with postfix, so it is unpacked from the .deb into /opt/queuetool-tools
# instead of installed; tests/benchmarks and benchmarks/run.py use it from there.
TOOLS=/opt/queuetool-tools
if [ ! -x "$TOOLS/usr/sbin/exipick" ] && command -v perl >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -q exim4-base >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get download -q exim4-base >/dev/null; })
    mkdir -p "$TOOLS" && dpkg-deb -x "$tmp"/exim4-base_*.deb "$TOOLS"
    rm -rf "$tmp"
fi

[ -z "$missing" ] && exit 0
if command -v debconf-set-selections >/dev/null 2>&1; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
fi
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
