#!/bin/sh
# Rebuild corpora/exim with the real Exim 4.96 of Debian 12 (exim4-daemon-light).
# Run as root on Debian 12:  sh corpora/exim/generate.sh
#
# Exim runs in a chroot (DIR) inside a network namespace (NS) whose only interface is lo.
# It listens on 127.0.0.1:25 with AUTH PLAIN/LOGIN (plain_server/login_server, fixed
# password table); local domains are delivered locally inside the chroot; every remote
# address goes to a "smarthost" 127.0.0.2::2525, which is either a fake next hop that only
# answers 4xx/5xx (inject.py serve), a tarpit, or nothing (connection refused).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
TOOLS="$HERE/../tools/mta-chroot.sh"
DIR=${DIR:-/var/tmp/qt-exim}
NS=${NS:-qt-exim}
EXTRA_ADDRS="10.0.0.11 10.0.0.12 10.0.0.13 198.51.100.10 198.51.100.11 198.51.100.77"
EXTRA_ADDRS="$EXTRA_ADDRS 203.0.113.50 203.0.113.77 203.0.113.99 203.0.113.143 192.0.2.15 192.0.2.44 192.0.2.201"
export EXTRA_ADDRS

run() { sh "$TOOLS" run "$DIR" "$NS" "$@"; }
in_chroot() { chroot "$DIR" "$@"; }
say() { echo "== $*" >&2; }

stop_exim() {  # the daemon writes its pid file; queue runners/deliveries exit by themselves
    if [ -f "$DIR/run/exim4/exim.pid" ]; then
        kill "$(cat "$DIR/run/exim4/exim.pid")" 2>/dev/null || true
        rm -f "$DIR/run/exim4/exim.pid"
        sleep 1
    fi
}

start_bg() {  # start_bg NAME CMD... : background helper inside the netns, its pid in $DIR/NAME.pid
    name=$1; shift
    setsid sh "$TOOLS" run "$DIR" "$NS" "$@" >"$DIR/$name.log" 2>&1 &
    echo $! >"$DIR/$name.pid"
    sleep 1
}
stop_bg() {
    [ -f "$DIR/$1.pid" ] && kill -- "-$(cat "$DIR/$1.pid")" 2>/dev/null || true
    rm -f "$DIR/$1.pid"; sleep 1
}

say "chroot $DIR"
sh "$TOOLS" destroy "$DIR" "$NS" 2>/dev/null || true
sh "$TOOLS" create "$DIR" exim4-daemon-light exim4-config exim4-base python3-minimal libpython3.11-stdlib

say "reset spool, logs, mailboxes"
rm -rf "$DIR/var/spool/exim4/input" "$DIR/var/spool/exim4/msglog" "$DIR/var/spool/exim4/db"
rm -f "$DIR"/var/log/exim4/* "$DIR"/var/mail/* "$DIR/root/injected.jsonl"
mkdir -p "$DIR/var/spool/exim4/input" "$DIR/var/spool/exim4/msglog" "$DIR/var/spool/exim4/db"
in_chroot chown -R Debian-exim:Debian-exim /var/spool/exim4
chmod 750 "$DIR/var/spool/exim4/input" "$DIR/var/spool/exim4/msglog"

say "accounts and configuration"
for u in alice bob carol scanner; do in_chroot id "$u" >/dev/null 2>&1 || in_chroot useradd -m "$u"; done
echo example.com >"$DIR/etc/mailname"
grep -q partner.example "$DIR/etc/hosts" || cat >>"$DIR/etc/hosts" <<'EOF'
198.51.100.10 mx1.partner.example
198.51.100.11 mx2.partner.example
10.0.0.11 alice-pc.office.example.com
EOF
grep -q '^sales:' "$DIR/etc/aliases" || printf 'sales: alice\naccounting: bob\n' >>"$DIR/etc/aliases"
cat >"$DIR/etc/exim4/update-exim4.conf.conf" <<'EOF'
dc_eximconfig_configtype='smarthost'
dc_other_hostnames='example.com ; mail.example.com'
dc_local_interfaces='127.0.0.1'
dc_readhost=''
dc_relay_domains=''
dc_minimaldns='false'
dc_relay_nets='192.0.2.0/24'
dc_smarthost='127.0.0.2::2525'
CFILEMODE='644'
dc_use_split_config='true'
dc_hide_mailname=''
dc_mailname_in_oh='true'
dc_localdelivery='mail_spool'
EOF
write_macros() {  # $1 = 1 for split_spool_directory (split config: macros live in conf.d/main/000_*)
    cat >"$DIR/etc/exim4/conf.d/main/000_queuetool_macros" <<EOF
MAIN_HARDCODE_PRIMARY_HOSTNAME = mail.example.com
AUTH_SERVER_ALLOW_NOTLS_PASSWORDS = 1
IGNORE_SMTP_LINE_LENGTH_LIMIT = 1
MAIN_LOG_SELECTOR = +smtp_protocol_error +smtp_syntax_error +smtp_connection +received_recipients +incoming_port +subject +delivery_size
CHECK_DATA_LOCAL_ACL_FILE = /etc/exim4/queuetool_data_acl
EOF
    [ "$1" = 1 ] && echo "QT_SPLIT_SPOOL = 1" >>"$DIR/etc/exim4/conf.d/main/000_queuetool_macros"
    in_chroot update-exim4.conf
}
cat >"$DIR/etc/exim4/conf.d/main/04_queuetool_spool" <<'EOF'
# queue-only: the daemon (-odq) and local sendmail submissions only queue; generate.sh
# runs the queue explicitly
queue_only = true
.ifdef QT_SPLIT_SPOOL
split_spool_directory = true
.endif
EOF
cat >"$DIR/etc/exim4/queuetool_data_acl" <<'EOF'
  # queuetool corpus: ACL variables end up in -H as -aclc/-aclm (length-prefixed values)
  warn
    set acl_c_session = $sender_host_address helo=$sender_helo_name
    set acl_m_origin = ${if def:authenticated_id {auth=$authenticated_id}{unauthenticated}}\nproto=$received_protocol
    remove_header = X-Spam-Status : X-Spam-Flag
EOF
cat >"$DIR/etc/exim4/conf.d/auth/20_queuetool_plaintext" <<'EOF'
# Debian's plain_server/login_server examples (conf.d/auth/30_exim4-config_examples), enabled.
plain_server:
  driver = plaintext
  public_name = PLAIN
  server_condition = "${if crypteq{$auth3}{${extract{1}{:}{${lookup{$auth2}lsearch{CONFDIR/passwd}{$value}{*:*}}}}}{1}{0}}"
  server_set_id = $auth2
  server_prompts = :
  .ifndef AUTH_SERVER_ALLOW_NOTLS_PASSWORDS
  server_advertise_condition = ${if eq{$tls_in_cipher}{}{}{*}}
  .endif

login_server:
  driver = plaintext
  public_name = LOGIN
  server_prompts = "Username:: : Password::"
  server_condition = "${if crypteq{$auth2}{${extract{1}{:}{${lookup{$auth1}lsearch{CONFDIR/passwd}{$value}{*:*}}}}}{1}{0}}"
  server_set_id = $auth1
  .ifndef AUTH_SERVER_ALLOW_NOTLS_PASSWORDS
  server_advertise_condition = ${if eq{$tls_in_cipher}{}{}{*}}
  .endif
EOF
: >"$DIR/etc/exim4/passwd"
for pair in alice:Wonderland-42 bob:Builder#2024 carol:Carol!Singer9 scanner:scan1234; do
    u=${pair%%:*}; p=${pair#*:}
    h=$(in_chroot perl -e 'print crypt($ARGV[0], "\$6\$" . $ARGV[1] . "salt\$")' "$p" "$u")
    echo "$u:$h" >>"$DIR/etc/exim4/passwd"
done
in_chroot chown root:Debian-exim /etc/exim4/passwd
chmod 640 "$DIR/etc/exim4/passwd"
cp "$HERE/inject.py" "$DIR/root/inject.py"
write_macros 0

say "phase A: daemon (-bd -odq, no queue runner), inject"
run /usr/sbin/exim4 -bd -odq
sleep 1
run python3 /root/inject.py phase-a

say "queue run 1: fake next hop answers 4xx/5xx"
start_bg nexthop python3 /root/inject.py serve
run /usr/sbin/exim4 -qf
sleep 2
stop_bg nexthop
say "queue run 2: next hop gone (connection refused)"
run /usr/sbin/exim4 -qf
sleep 2

say "phase B: split_spool_directory = true, inject"
stop_exim
write_macros 1
run /usr/sbin/exim4 -bd -odq
sleep 1
run python3 /root/inject.py phase-b

say "-J journal: a delivery killed while the remote hop hangs (local rcpt already delivered)"
JID=$(grep '"Project plan v2"\|used for the -J' "$DIR/root/injected.jsonl" | tail -1 | sed 's/.*"id": "\([^"]*\)".*/\1/')
start_bg tarpit python3 /root/inject.py tarpit
setsid sh "$TOOLS" run "$DIR" "$NS" /usr/sbin/exim4 -M "$JID" >"$DIR/jrun.log" 2>&1 &
echo $! >"$DIR/jrun.pid"
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    [ -n "$(find "$DIR/var/spool/exim4/input" -name "$JID-J")" ] && break
    sleep 1
done
sleep 1
stop_bg jrun
stop_bg tarpit
[ -n "$(find "$DIR/var/spool/exim4/input" -name "$JID-J")" ] || { echo "no -J file for $JID" >&2; exit 1; }

say "freeze a few (exim4 -Mf)"
for who in '"account": "scanner"' '"scenario": "open-relay"' '"scenario": "web-script"'; do
    id=$(grep "$who" "$DIR/root/injected.jsonl" | tail -1 | sed 's/.*"id": "\([^"]*\)".*/\1/')
    run /usr/sbin/exim4 -Mf "$id"
done
BOUNCE=$(run /usr/sbin/exipick -i '$sender_address eq ""' '$local_error_message' | head -1 || true)
[ -n "$BOUNCE" ] && run /usr/sbin/exim4 -Mf "$BOUNCE"
stop_exim

say "listings"
OUT="$HERE"
run /usr/sbin/exim4 -bp >"$OUT/listing-bp.txt"
run /usr/sbin/exipick -bpa >"$OUT/listing-exipick.txt"
run /usr/sbin/exipick --show-vars sender_address,sender_host_address,sender_helo_name,sender_host_authenticated,authenticated_id,authenticated_sender,received_protocol,deliver_freeze,shown_message_size,recipients_del,recipients_undel,originator_login >"$OUT/listing-exipick-vars.txt" || true
run python3 /root/inject.py manifest /root/manifest.jsonl
cp "$DIR/root/manifest.jsonl" "$OUT/manifest.jsonl"
cp "$DIR/root/injected.jsonl" "$OUT/injected.jsonl"

say "copy spool and logs"
rm -rf "$OUT/spool" "$OUT/logs"
mkdir -p "$OUT/spool" "$OUT/logs"
cp -a "$DIR/var/spool/exim4/input" "$DIR/var/spool/exim4/msglog" "$OUT/spool/"
for f in mainlog rejectlog paniclog; do
    [ -f "$DIR/var/log/exim4/$f" ] && cp "$DIR/var/log/exim4/$f" "$OUT/logs/$f"
done
chown -R --reference="$HERE/inject.py" "$OUT/spool" "$OUT/logs" 2>/dev/null || true
python3 - "$OUT" "$DIR/var/spool/exim4" <<'EOF'
import json, os, sys
out, live = sys.argv[1], sys.argv[2]
meta = {}
for sub in ("input", "msglog"):
    for dirpath, _dirs, files in os.walk(os.path.join(live, sub)):
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            meta[os.path.relpath(path, live)] = {"mtime": st.st_mtime, "mode": st.st_mode & 0o7777}
with open(os.path.join(out, "files.json"), "w") as fh:
    json.dump(dict(sorted(meta.items())), fh, indent=1)
print(f"files.json: {len(meta)} files", file=sys.stderr)
EOF

say "stop everything"
sh "$TOOLS" destroy "$DIR" "$NS"
du -sh "$OUT/spool" "$OUT/logs" >&2
