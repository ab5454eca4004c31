# Clean Debian root filesystems for packaging/wheel_check.sh and packaging/source_check.sh.
# Sourced, not run. Needs root and apt on the host (debootstrap and zstd are installed if missing).
#
#   root_tarball NAME SUITE PKG...   print the cached tarball of a minbase SUITE root with PKG...,
#                                    making it first if the cache has none (debootstrap, minutes)
#   root_open TARBALL                unpack a fresh copy, mount /proc /sys /dev /dev/pts /tmp and
#                                    the pip cache; sets ROOT. root_close (also run on EXIT) undoes it
#   in_root CMD...                   run CMD in ROOT under a clean environment (env -i)
#
# SPDL_ROOT_CACHE (default /var/cache/spdl-roots) keeps the tarballs and pip's download cache;
# SPDL_DEBIAN_MIRROR picks the mirror (default http://deb.debian.org/debian).

# $(root_tarball ...) must stop at the first failure too.
shopt -s inherit_errexit

ROOT_CACHE=${SPDL_ROOT_CACHE:-/var/cache/spdl-roots}
DEBIAN_MIRROR=${SPDL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Bump to rebuild every cached root (the cache key also holds the suite and the package list).
ROOT_RECIPE=2
ROOT=
ROOT_RM=
ROOT_MOUNTS=()

say() { printf '\033[1m[clean-root]\033[0m %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

root_tarball() {
    local name=$1 suite=$2; shift 2
    local key; key=$(printf '%s|%s|%s|%s' "$ROOT_RECIPE" "$suite" "$*" "$DEBIAN_MIRROR" \
        | sha256sum | cut -c1-12)
    local tarball="$ROOT_CACHE/$name-$suite-$key.tar.zst"
    _root_tool zstd zstd
    if [ ! -f "$tarball" ]; then
        _root_tool debootstrap debootstrap
        mkdir -p "$ROOT_CACHE"
        local build t0=$SECONDS
        build=$(mktemp -d "$ROOT_CACHE/.build-$name.XXXXXX")
        ROOT=$build/root ROOT_RM=$build
        _root_traps
        say "making the $name root ($suite minbase + $*); cached as $tarball"
        if ! debootstrap --variant=minbase "$suite" "$ROOT" "$DEBIAN_MIRROR" \
                >"$build/debootstrap.log" 2>&1; then
            tail -n 30 "$build/debootstrap.log" >&2
            die "debootstrap $suite failed (log above)"
        fi
        _root_umount_under "$ROOT"
        # apt, not debootstrap's --include: it resolves alternatives and virtual packages.
        _root_mount_all
        in_root sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" \
            && apt-get clean && rm -rf /var/lib/apt/lists/*' sh "$@" >"$build/apt.log" 2>&1 \
            || { tail -n 30 "$build/apt.log" >&2; die "apt-get install in the $name root failed"; }
        _root_umount_all
        rm -f "$ROOT/etc/resolv.conf" "$ROOT/etc/ssl/host-ca-bundle.crt"
        tar --zstd -C "$ROOT" --numeric-owner -cf "$build/root.tar.zst" .
        mv "$build/root.tar.zst" "$tarball"
        root_close
        trap - EXIT
        say "$name root made in $((SECONDS - t0)) s ($(du -h "$tarball" | cut -f1))"
    fi
    echo "$tarball"
}

root_open() {
    _root_reap_stale
    ROOT=$(mktemp -d "${TMPDIR:-/tmp}/spdl-root.XXXXXX") ROOT_RM=
    echo "$BASHPID" >"$ROOT.pid"
    _root_traps
    tar --zstd -C "$ROOT" --numeric-owner -xf "$1"
    _root_mount_all
    # pip's download cache outlives the root (it holds wheels, nothing installed), so reruns
    # do not download pytest, Pillow, PyAV and numpy again.
    mkdir -p "$ROOT_CACHE/pip-cache" "$ROOT/root/.cache/pip"
    _root_mount --bind "$ROOT_CACHE/pip-cache" "$ROOT/root/.cache/pip"
}

_root_mount_all() {
    _root_mount --bind /dev "$ROOT/dev"
    _root_mount --bind /dev/pts "$ROOT/dev/pts"
    _root_mount -t tmpfs -o mode=1777 tmpfs "$ROOT/dev/shm"     # the root's own, not the host's
    _root_mount -t proc proc "$ROOT/proc"
    _root_mount -t sysfs sysfs "$ROOT/sys"
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
    # The host's CA bundle, for pip behind a TLS-inspecting proxy; a copy, the root's own
    # trust store stays as debootstrap made it.
    local ca=${SPDL_CA_BUNDLE:-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}
    if [ -f "$ca" ]; then mkdir -p "$ROOT/etc/ssl" && cp -L "$ca" "$ROOT/etc/ssl/host-ca-bundle.crt"; fi
}

in_root() {
    local cert=()
    [ -f "$ROOT/etc/ssl/host-ca-bundle.crt" ] && cert=(PIP_CERT=/etc/ssl/host-ca-bundle.crt)
    chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 PIP_PROGRESS_BAR=off \
        "${cert[@]}" "$@"
}

root_close() {
    [ -n "$ROOT" ] || return 0
    _root_umount_all
    local rm=${ROOT_RM:-$ROOT}
    # Only delete once nothing is mounted below it (a bound /dev would otherwise go with it).
    if grep -q " $rm/" /proc/mounts; then
        say "left $rm in place: something is still mounted below it"
    else
        rm -rf --one-file-system "$rm"
    fi
    rm -f "$ROOT.pid"
    ROOT= ROOT_RM=
}

# Roots left by a check that was killed (SIGKILL, a lost shell): their owner is gone.
_root_reap_stale() {
    local pidfile dir
    for pidfile in "${TMPDIR:-/tmp}"/spdl-root.*.pid; do
        [ -f "$pidfile" ] || continue
        kill -0 "$(cat "$pidfile")" 2>/dev/null && continue
        dir=${pidfile%.pid}
        say "removing $dir, left by a check that is gone"
        _root_umount_under "$dir"
        grep -q " $dir/" /proc/mounts || { rm -rf --one-file-system "$dir"; rm -f "$pidfile"; }
    done
}

_root_umount_all() {
    local i
    for ((i = ${#ROOT_MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${ROOT_MOUNTS[i]}" 2>/dev/null || umount -l "${ROOT_MOUNTS[i]}"
    done
    ROOT_MOUNTS=()
    _root_umount_under "$ROOT"
}

# _root_tool CMD PKG: install PKG with apt when CMD is missing (the checks run as root).
_root_tool() {
    command -v "$1" >/dev/null && return 0
    command -v apt-get >/dev/null || die "$1 is missing: install $2"
    say "installing $2 with apt"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null \
        || die "apt-get install $2 failed"
}

_root_traps() {
    trap root_close EXIT
    trap 'exit 130' INT TERM
}

_root_mount() {
    mount "$@"
    ROOT_MOUNTS+=("${!#}")
    # A bind of a shared mount joins its peer group: what is mounted or unmounted below it
    # would reach the host's /dev. Private, it does not.
    [ "$1" != --bind ] || mount --make-private "${!#}"
}

# Unmount whatever is mounted below $1 (debootstrap leaves /proc mounted when it fails), deepest first.
_root_umount_under() {
    local m
    case "$1" in /?*) ;; *) die "refusing to unmount below '$1'" ;; esac
    for m in $(awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
}
