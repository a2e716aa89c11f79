#!/bin/sh
# Regenerate corpora/postfix with the real Postfix 3.7 of Debian 12 (run as root).
#
# Builds a chroot (/var/tmp/qt-postfix), runs Postfix + Dovecot SASL inside netns
# qt-postfix (lo only), feeds inject.py's story, sets special states, saves the
# listing (postqueue -j / -p), the log and a copy of the spool, then stops everything.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
TOOLS=$HERE/../tools/mta-chroot.sh
DIR=${DIR:-/var/tmp/qt-postfix}
NS=${NS:-qt-postfix}
export EXTRA_ADDRS="10.0.0.21 10.0.0.22 10.0.0.23 198.51.100.10 198.51.100.11 198.51.100.20 198.51.100.21 198.51.100.22 203.0.113.10 203.0.113.11 203.0.113.12 203.0.113.13 203.0.113.14 203.0.113.50 203.0.113.51 203.0.113.52 192.0.2.15 192.0.2.77 192.0.2.99 192.0.2.150"

R() { sh "$TOOLS" run "$DIR" "$NS" "$@"; }
PC() { R postconf -e "$@"; }

sh "$TOOLS" destroy "$DIR" "$NS" || true
sh "$TOOLS" create "$DIR" postfix dovecot-core python3

# ---- fresh state inside the chroot
R postfix stop >/dev/null 2>&1 || true
R sh -c 'rm -rf /root/out /var/log/mail.log /var/mail/*; for q in incoming active deferred hold corrupt maildrop saved defer bounce trace flush; do [ -d /var/spool/postfix/$q ] && find /var/spool/postfix/$q -type f -delete; done; true'
R sh -c 'for u in alice bob carol; do id $u >/dev/null 2>&1 || useradd -m $u; done'
cp "$HERE/inject.py" "$DIR/root/inject.py"
# master.cf as the package installed it (a previous run comments out qmgr and pickup)
[ -f "$DIR/etc/postfix/master.cf.pkg" ] || cp "$DIR/etc/postfix/master.cf" "$DIR/etc/postfix/master.cf.pkg"
cp "$DIR/etc/postfix/master.cf.pkg" "$DIR/etc/postfix/master.cf"

# ---- Dovecot: SASL only (passwd-file, plaintext allowed on loopback)
cat > "$DIR/etc/dovecot/dovecot.conf" <<'EOF'
protocols =
base_dir = /run/dovecot/
log_path = /var/log/dovecot.log
auth_mechanisms = plain login
disable_plaintext_auth = no
auth_verbose = yes
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%n /etc/dovecot/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener /var/spool/postfix/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
EOF
cat > "$DIR/etc/dovecot/users" <<'EOF'
alice:{PLAIN}Alice-2024!
bob:{PLAIN}b0b-secret
carol:{PLAIN}Car0l#mail
scanner:{PLAIN}scan1234
EOF
cat > "$DIR/etc/hosts" <<'EOF'
127.0.0.1 localhost
127.0.0.1 mail.example.com
10.0.0.21 alice-pc.office.example.com
10.0.0.22 bob-laptop.office.example.com
10.0.0.23 carol-desk.office.example.com
198.51.100.10 mx1.partner.example
198.51.100.11 mx2.partner.example
198.51.100.22 mail.bounce-host.example
EOF

# ---- Postfix: loopback only; remote delivery to a closed port (deferred), a tarpit
# (stays active) and a server that refuses recipients with 550 (bounce/ log).
printf 'sales@example.com sales.team@partner.example, bob@example.com\ninfo@example.com helpdesk@outsourced.example\n' > "$DIR/etc/postfix/virtual"
cat > "$DIR/etc/postfix/transport" <<'EOF'
slow.example smtp:[127.0.0.1]:2526
reject.example smtp:[127.0.0.1]:2527
EOF
R newaliases
R postmap /etc/postfix/virtual
R postmap /etc/postfix/transport
PC myhostname=mail.example.com mydomain=example.com myorigin=example.com \
   'mydestination=mail.example.com, localhost, example.com' \
   inet_interfaces=127.0.0.1 inet_protocols=ipv4 \
   'mynetworks=127.0.0.0/8 192.0.2.0/24' \
   'smtpd_relay_restrictions=permit_mynetworks permit_sasl_authenticated reject_unauth_destination' \
   smtpd_sasl_auth_enable=yes smtpd_sasl_type=dovecot smtpd_sasl_path=private/auth \
   smtpd_tls_security_level=none smtp_tls_security_level=none \
   'relayhost=[127.0.0.1]:2525' transport_maps=hash:/etc/postfix/transport \
   virtual_alias_maps=hash:/etc/postfix/virtual \
   maillog_file=/var/log/mail.log \
   minimal_backoff_time=2h maximal_backoff_time=4h queue_run_delay=1h \
   smtp_helo_timeout=3600s smtp_connect_timeout=10s \
   enable_long_queue_ids=no smtpd_sasl_authenticated_header=no \
   smtputf8_enable=no compatibility_level=3.6
R postconf -F '*/*/chroot=n'
R sh -c 'touch /var/log/mail.log; mkdir -p /run/dovecot /root/out'

R dovecot
R postfix start
sleep 2
R sh -c 'python3 /root/inject.py tarpit >/dev/null 2>&1 &'
sleep 1

# ---- part 1: short queue ids
R python3 /root/inject.py short
sleep 8
# ---- part 2: long queue ids, login in the Received header
PC enable_long_queue_ids=yes smtpd_sasl_authenticated_header=yes
R postfix reload
sleep 2
R python3 /root/inject.py long
sleep 8

# ---- special states
# hold: two campaign messages and one relay message (first ones in the listing order)
R sh -c "postqueue -j | python3 -c '
import json,sys
rows=[json.loads(l) for l in sys.stdin]
spam=[r for r in rows if r[\"queue_name\"]==\"deferred\" and r[\"sender\"] in (\"sales@mailbox.example\",\"promo@mailbox.example\")]
relay=[r for r in rows if r[\"queue_name\"]==\"deferred\" and r[\"sender\"].startswith(\"promo\") and \"bulk-sender\" in r[\"sender\"]]
hold=[r[\"queue_id\"] for r in spam[:2]+relay[:1]]
forged=[r for r in rows if r[\"queue_name\"]==\"deferred\" and r[\"sender\"]==\"newsletter@pharma-direct.example\"]
open(\"/root/out/hold.ids\",\"w\").write(\"\\n\".join(hold)+\"\\n\")
open(\"/root/out/force.ids\",\"w\").write(forged[0][\"queue_id\"]+\"\\n\")
'"
R sh -c 'postsuper -h - < /root/out/hold.ids'
# forced expiry of one forged-sender spam: qmgr bounces it to the forged sender (backscatter we make)
R sh -c 'postsuper -f - < /root/out/force.ids; postqueue -i $(cat /root/out/force.ids)'
sleep 6
# corrupt: a hand-truncated copy of a real queue file, dropped into incoming/; qmgr moves it to corrupt/
R sh -c 'src=$(find /var/spool/postfix/deferred -type f | sort | head -1); head -c 400 "$src" > /var/spool/postfix/incoming/ABCDEF12345; chown postfix:postfix /var/spool/postfix/incoming/ABCDEF12345; chmod 0700 /var/spool/postfix/incoming/ABCDEF12345; echo "$src" > /root/out/corrupt.src; for i in 1 2 3; do postkick public qmgr I && break; sleep 1; done; true'
sleep 4

# ---- late arrivals: qmgr and pickup removed, so files stay in incoming/ and maildrop/
R postconf -M# qmgr/unix pickup/unix
R postfix reload
sleep 3
R python3 /root/inject.py incoming
R python3 /root/inject.py maildrop
# forced-expire flag on one deferred message (no qmgr now: it stays deferred, mode 0710)
R sh -c 'postqueue -j | python3 -c "
import json,sys
rows=[json.loads(l) for l in sys.stdin]
d=[r for r in rows if r[\"queue_name\"]==\"deferred\" and r[\"sender\"]==\"deals@freemail.test\"]
print(d[0][\"queue_id\"])" > /root/out/expire.ids; postsuper -e - < /root/out/expire.ids'
R sh -c 'python3 /root/inject.py inflight >/dev/null 2>&1 &'
for i in $(seq 1 40); do [ -f "$DIR/root/out/inflight.ready" ] && break; sleep 0.5; done
sleep 1

# ---- snapshot: listing, then the spool, while the in-flight session is open
R sh -c 'postqueue -j > /root/out/listing.jsonl; postqueue -p > /root/out/listing.txt'
rm -rf "$HERE/spool" "$HERE/logs"
mkdir -p "$HERE/spool" "$HERE/logs"
for q in incoming active deferred hold corrupt maildrop saved defer bounce trace; do
    [ -d "$DIR/var/spool/postfix/$q" ] && cp -a "$DIR/var/spool/postfix/$q" "$HERE/spool/"
done
touch "$DIR/root/out/inflight.done"
sleep 2
R python3 /root/inject.py manifest
R postfix stop || true
sleep 1
cp "$DIR/root/out/listing.jsonl" "$DIR/root/out/listing.txt" "$DIR/root/out/manifest.jsonl" "$HERE/"
cp "$DIR/var/log/mail.log" "$HERE/logs/mail.log"
cp "$DIR/var/log/dovecot.log" "$HERE/logs/dovecot.log" 2>/dev/null || true
R postconf -n > "$HERE/logs/postconf-n.txt"
echo "corrupt source: $(cat "$DIR/root/out/corrupt.src")" > "$HERE/logs/states.txt"
echo "held: $(tr '\n' ' ' < "$DIR/root/out/hold.ids")" >> "$HERE/logs/states.txt"
echo "forced expiry (bounced): $(cat "$DIR/root/out/force.ids")" >> "$HERE/logs/states.txt"
echo "expire flag set: $(cat "$DIR/root/out/expire.ids")" >> "$HERE/logs/states.txt"
python3 - "$HERE" <<'EOF'
import json, os, sys
here = sys.argv[1]
spool = os.path.join(here, "spool")
meta = {}
for base, dirs, files in os.walk(spool):
    for name in files:
        path = os.path.join(base, name)
        st = os.lstat(path)
        meta[os.path.relpath(path, spool)] = {"mtime": st.st_mtime, "mode": st.st_mode & 0o7777}
json.dump(dict(sorted(meta.items())), open(os.path.join(here, "files.json"), "w"), indent=1)
EOF
chmod -R u+rwX,go+rX "$HERE/spool"
# Postfix's own postcat on the copied files: the oracle for the reader's message bytes
rm -rf "$DIR/tmp/pfc"; mkdir -p "$DIR/tmp/pfc"; cp -r "$HERE/spool" "$DIR/tmp/pfc/"
cp "$HERE/inject.py" "$DIR/root/inject.py"
R python3 /root/inject.py postcat /tmp/pfc/spool > "$HERE/postcat-bh.json"
sh "$TOOLS" destroy "$DIR" "$NS"
echo "corpus written to $HERE"
