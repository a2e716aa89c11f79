#!/bin/sh
# Regenerate corpora/sendmail from a real Sendmail 8.17 (Debian 12 packages), run in a
# chroot inside a network namespace whose only interface is lo. Re-runnable as root.
#
#   sh corpora/sendmail/generate.sh
#
# Steps: build the chroot (sendmail-bin, sendmail-cf, sasl2-bin, rsyslog, python3),
# configure (127.0.0.1 only, SASL PLAIN/LOGIN from sasldb, smart host on a closed
# loopback port, Connect:192.0.2 RELAY = the open-relay misconfiguration), start
# rsyslogd + sm-mta, inject phase A, one queue run, restart with ${auth_*} persisted,
# inject phase B, a second queue run (delay warnings), quarantine/lose a few, save the
# MTA's own listings and logs, copy the spool, write files.json and manifest.jsonl.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
TOOL="$HERE/../tools/mta-chroot.sh"
DIR=${DIR:-/var/tmp/qt-sendmail}
NS=${NS:-qt-sendmail}
export EXTRA_ADDRS="10.0.0.21 10.0.0.22 10.0.0.23 198.51.100.10 198.51.100.11 198.51.100.77 198.51.100.78 198.51.100.79 198.51.100.99 203.0.113.7 203.0.113.23 203.0.113.45 203.0.113.88 192.0.2.15 192.0.2.77"
PKGS="sendmail-bin sensible-mda sendmail-base sendmail-cf sasl2-bin libsasl2-modules rsyslog m4 make python3 procps"

# Run a shell command inside the chroot + netns, with the server's own hostname.
inside() { sh "$TOOL" run "$DIR" "$NS" unshare --uts sh -c "hostname mail.example.com; $1"; }

sh "$TOOL" destroy "$DIR" "$NS" || true
sh "$TOOL" create "$DIR" $PKGS

# ---- configuration (files written from the host into the chroot) ----
cat > "$DIR/etc/hosts" <<'EOF'
127.0.0.1	mail.example.com mail localhost
10.0.0.21	alice-laptop.office.example.com
10.0.0.22	bob-pc.office.example.com
10.0.0.23	carol-mac.office.example.com
198.51.100.10	mx1.partner.example
198.51.100.11	mx2.partner.example
198.51.100.77	mx.example.net
198.51.100.78	mx.mail.test
198.51.100.79	mx.uni.test
EOF
echo mail.example.com > "$DIR/etc/hostname"
# no DNS at all: names come from /etc/hosts only
cp "$DIR/etc/mail/service.switch-nodns" "$DIR/etc/mail/service.switch"
printf 'example.com\nmail.example.com\nlocalhost\n' > "$DIR/etc/mail/local-host-names"

MC="$DIR/etc/mail/sendmail.mc"
[ -f "$MC.debian" ] || cp "$MC" "$MC.debian"
write_mc() {  # $1 = extra LOCAL_CONFIG lines (may be empty)
    sed '/^MAILER_DEFINITIONS/,$d' "$MC.debian" > "$MC"
    cat >> "$MC" <<'EOF'
dnl ---- queuetool corpus: mail.example.com, never delivers outside ----
define(`confDOMAIN_NAME', `mail.example.com')dnl
define(`confLOG_LEVEL', `10')dnl  AUTH=server / AUTH failure lines need LogLevel > 9
define(`SMART_HOST', `[127.0.0.2]')dnl  not in $=w (127.0.0.1 is), so really used
define(`RELAY_MAILER_ARGS', `TCP $h 2525')dnl  closed port: every remote delivery defers
define(`ESMTP_MAILER_ARGS', `TCP $h 2525')dnl
define(`SMTP_MAILER_ARGS', `TCP $h 2525')dnl
define(`confTO_QUEUEWARN', `2m')dnl  so the second queue run sends delay warnings
define(`confAUTH_MECHANISMS', `PLAIN LOGIN')dnl
TRUST_AUTH_MECH(`PLAIN LOGIN')dnl
define(`confAUTH_REALM', `mail.example.com')dnl
FEATURE(`accept_unresolvable_domains')dnl
FEATURE(`nocanonify')dnl
FEATURE(`mailertable')dnl  slow.example -> the tarpit on 127.0.0.3:2525
EOF
    if [ -n "$1" ]; then printf 'LOCAL_CONFIG\n%s\n' "$1" >> "$MC"; fi
    printf 'MAILER_DEFINITIONS\nMAILER(`local'"'"')dnl\nMAILER(`smtp'"'"')dnl\n' >> "$MC"
    inside "cd /etc/mail && m4 sendmail.mc > sendmail.cf && m4 submit.mc > submit.cf"
}
write_mc ""

SUBMIT="$DIR/etc/mail/submit.mc"
grep -q confDOMAIN_NAME "$SUBMIT" || sed -i "s/^FEATURE(\`msp'/define(\`confDOMAIN_NAME', \`mail.example.com')dnl\n&/" "$SUBMIT"

# access: the misconfiguration -- Debian ships "Connect:192.0.2 REJECT"; this server relays it.
# Greet pause and per-client rate limits off so the injector runs quickly.
ACCESS="$DIR/etc/mail/access"
[ -f "$ACCESS.debian" ] || cp "$ACCESS" "$ACCESS.debian"
sed -e 's/^Connect:192.0.2[[:space:]].*/Connect:192.0.2\t\tRELAY/' \
    -e 's/^GreetPause:[[:space:]]*5000/GreetPause:\t\t\t\t0/' \
    -e 's/^ClientRate:[[:space:]]*10/ClientRate:\t\t\t\t0/' \
    -e 's/^ClientConn:[[:space:]]*10/ClientConn:\t\t\t\t0/' "$ACCESS.debian" > "$ACCESS"

printf 'slow.example\trelay:[127.0.0.3]\n' > "$DIR/etc/mail/mailertable"

cat > "$DIR/etc/mail/aliases" <<'EOF'
mailer-daemon: postmaster
postmaster: root
abuse: root
root: alice
dave: dave@home.example
sales: alice, sales-desk@outsourcing.example
info: info-archive@archive.example
EOF

for conf in /etc/sasl2/Sendmail.conf /usr/lib/sasl2/Sendmail.conf /etc/mail/sasl/Sendmail.conf2; do
    mkdir -p "$DIR$(dirname $conf)"
    printf 'pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\n' > "$DIR$conf"
done

# rsyslog without the kernel log module (no /proc/kmsg in a chroot)
sed -i 's/^module(load="imklog")/#&/' "$DIR/etc/rsyslog.conf"

inside '
for u in alice bob carol; do id $u >/dev/null 2>&1 || useradd -m $u; done
rm -f /etc/sasldb2
echo "Alice-2024!" | saslpasswd2 -p -c -u mail.example.com alice
echo "b0b-Secure#" | saslpasswd2 -p -c -u mail.example.com bob
echo "carol.pw.77" | saslpasswd2 -p -c -u mail.example.com carol
echo "scan1234"    | saslpasswd2 -p -c -u mail.example.com scanner
chmod 640 /etc/sasldb2
cd /etc/mail && makemap hash access < access && makemap hash mailertable < mailertable && sendmail-mta -bi >/dev/null
rm -f /var/spool/mqueue/* /var/spool/mqueue-client/* /var/mail/* /root/inject-state.jsonl
mkdir -p /run/sendmail/mta /run/sendmail/msp && chown smmta:smmsp /run/sendmail/mta
rm -f /var/log/mail.log /var/log/syslog /var/log/auth.log /run/rsyslogd.pid
rsyslogd
'

start_mta() { inside '/usr/sbin/sendmail-mta -L sm-mta -bd; sleep 2'; }
stop_mta() { inside 'kill $(head -1 /run/sendmail/mta/sendmail.pid); sleep 2'; }

cp "$HERE/inject.py" "$DIR/root/inject.py"
start_mta
inside 'python3 /root/inject.py phase-a'
sleep 5
inside '/usr/sbin/sendmail-mta -q'
stop_mta
# phase B (from here on): persist the SASL identity in the qf ($={persistentMacros} class, op.me)
write_mc 'C{persistentMacros}{auth_authen} {auth_type} {auth_author}'
start_mta
inside 'python3 /root/inject.py phase-b'
sleep 130   # older than Timeout.queuewarning=2m -> delay warnings (Fw) on the next run
inside '/usr/sbin/sendmail-mta -q'
inside 'python3 /root/inject.py states'
sleep 3
# caught in the act: a delivery hanging on the tarpit (qf locked, xf open) and a
# campaign session stopped mid-DATA (df only) while the spool is copied
inside 'nohup python3 /root/inject.py tarpit >/dev/null 2>&1 &'
sleep 1
inside 'python3 /root/inject.py late'
inside 'nohup python3 /root/inject.py in-flight >/dev/null 2>&1 &'
sleep 5

# ---- save the MTA's own view, the logs and the spool ----
OUT="$HERE"
mkdir -p "$OUT/logs"
inside 'mailq' > "$OUT/listing.txt" || true
inside 'mailq -qQ' > "$OUT/listing-quarantined.txt" || true
inside 'mailq -qL' > "$OUT/listing-lost.txt" || true
cp "$DIR/etc/mail/sendmail.mc" "$OUT/logs/sendmail.mc"
cp "$DIR/etc/mail/access" "$OUT/logs/access"
rm -rf "$OUT/spool" "$DIR/root/spool-copy"
mkdir -p "$OUT/spool" "$DIR/root/spool-copy"
cp -p "$DIR"/var/spool/mqueue/* "$DIR/root/spool-copy/"
cp -p "$DIR"/root/spool-copy/* "$OUT/spool/"
inside 'python3 /root/inject.py manifest /root/spool-copy /root'
cp "$DIR/root/manifest.jsonl" "$DIR/root/delivered.jsonl" "$OUT/"
stop_mta
inside 'kill $(cat /run/rsyslogd.pid); sleep 1'
mkdir -p "$OUT/logs"
cp "$DIR/var/log/mail.log" "$OUT/logs/mail.log"
python3 - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
spool = os.path.join(out, "spool")
meta = {}
for name in sorted(os.listdir(spool)):
    st = os.lstat(os.path.join(spool, name))
    meta[name] = {"mtime": st.st_mtime, "atime": st.st_atime, "mode": st.st_mode & 0o7777}
with open(os.path.join(out, "files.json"), "w") as handle:
    json.dump(meta, handle, indent=1, sort_keys=True)
print(f"files.json: {len(meta)} files")
EOF
sh "$TOOL" destroy "$DIR" "$NS" || true
du -sh "$OUT/spool"
