#!/bin/sh
# Isolated Debian 12 (bookworm) chroots for running one real MTA each, so the
# conflicting packages (postfix, exim4, sendmail) never meet, and a network
# namespace whose only interface is lo, so nothing the MTA does can leave the machine.
#
#   mta-chroot.sh create DIR [PKG...]   debootstrap (cached) + apt-get install PKG inside
#   mta-chroot.sh run DIR NETNS CMD...  run CMD inside the chroot, inside netns NETNS (lo only)
#   mta-chroot.sh shell DIR CMD...      run CMD inside the chroot with the host network (apt only)
#   mta-chroot.sh destroy DIR NETNS     stop processes, unmount, delete netns (keeps DIR)
#
# Needs root on Debian (debootstrap and iproute2 are installed when missing).
set -eu
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BASE_CACHE=${BASE_CACHE:-/var/tmp/queuetool-bookworm-base.tar}

need() { command -v "$1" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null; }

mount_fs() {
    dir=$1
    mountpoint -q "$dir/proc" || mount -t proc proc "$dir/proc"
    mountpoint -q "$dir/dev/pts" 2>/dev/null || { mkdir -p "$dir/dev/pts"; mount -t devpts devpts "$dir/dev/pts" 2>/dev/null || true; }
    cp /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
}

netns_up() {
    ns=$1
    ip netns list | grep -qw "$ns" || ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
    # extra addresses on lo stand in for outside clients; they exist only in this namespace
    for a in ${EXTRA_ADDRS:-}; do ip netns exec "$ns" ip addr add "$a/32" dev lo 2>/dev/null || true; done
}

cmd=${1:-}; shift || true
case "$cmd" in
create)
    dir=$1; shift
    need debootstrap debootstrap
    if [ ! -x "$dir/bin/sh" ]; then
        mkdir -p "$dir"
        if [ -f "$BASE_CACHE" ]; then
            tar -C "$dir" -xf "$BASE_CACHE"
        else
            debootstrap --variant=minbase bookworm "$dir" "$MIRROR" >/dev/null
            tar -C "$dir" -cf "$BASE_CACHE.tmp" . && mv "$BASE_CACHE.tmp" "$BASE_CACHE"
        fi
    fi
    mount_fs "$dir"
    printf '#!/bin/sh\nexit 101\n' > "$dir/usr/sbin/policy-rc.d"; chmod +x "$dir/usr/sbin/policy-rc.d"
    if [ $# -gt 0 ]; then
        chroot "$dir" sh -c "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $*" >/dev/null
    fi
    ;;
run)
    dir=$1; ns=$2; shift 2
    need ip iproute2
    mount_fs "$dir"
    netns_up "$ns"
    ip netns exec "$ns" chroot "$dir" "$@"
    ;;
shell)
    dir=$1; shift
    mount_fs "$dir"
    chroot "$dir" "$@"
    ;;
destroy)
    dir=$1; ns=$2
    if [ -d "$dir/proc" ]; then
        for pid in $(ls /proc | grep -E '^[0-9]+$'); do
            root=$(readlink "/proc/$pid/root" 2>/dev/null || true)
            [ "$root" = "$(readlink -f "$dir")" ] && kill "$pid" 2>/dev/null || true
        done
        sleep 1
        umount "$dir/dev/pts" 2>/dev/null || true
        umount "$dir/proc" 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
    ;;
*)
    sed -n '2,12p' "$0"; exit 2 ;;
esac
