# Debian trixie chroots for building and testing the packages; sourced by the other scripts.
#
# A chroot starts from a debootstrap'ed base kept as a tarball in the cache, one per
# architecture, so only the first use downloads Debian; a foreign architecture runs under
# qemu-user-static through binfmt_misc. Commands run in a private mount namespace
# (unshare), so /proc and /dev are unmounted by the kernel when they end, however they end.
#
# Cache: $EDGE_AGENT_PKG_CACHE, default ${XDG_CACHE_HOME:-$HOME/.cache}/edge-agent-packaging
#   base/trixie-<arch>.tar        the debootstrap result (minbase)
#   build/<arch>/                 a persistent build chroot: base + nodejs, libnode-dev, g++, make, python3
#   apt/<arch>/                   downloaded .deb files, shared by every chroot of that arch
#   modules/<arch>-abi<N>-<lock>/ production node_modules built for that arch and Node ABI

SUITE=trixie
MIRROR="${EDGE_AGENT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${EDGE_AGENT_PKG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-agent-packaging}"

say() { echo "package: $*" >&2; }
die() {
  echo "package: $*" >&2
  exit 1
}

host_arch() { dpkg --print-architecture; }

qemu_for() {
  case "$1" in
    arm64) echo aarch64 ;;
    armhf) echo arm ;;
    amd64) echo x86_64 ;;
    *) return 1 ;;
  esac
}

# Why chroots of ARCH cannot be made here, or nothing when they can.
chroot_unavailable() {
  local arch="$1"
  [ "$(id -u)" -eq 0 ] || { echo "not root (debootstrap and chroot need root)"; return; }
  command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)"; return; }
  command -v unshare >/dev/null || { echo "unshare (util-linux) is missing"; return; }
  unshare --mount --propagation private true 2>/dev/null ||
    { echo "cannot create a mount namespace (unshare --mount refused)"; return; }
  [ "$arch" = "$(host_arch)" ] && return
  local q
  q="$(qemu_for "$arch")" || { echo "unknown architecture $arch"; return; }
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null ||
      { echo "binfmt_misc is not mounted and cannot be (mount -t binfmt_misc refused)"; return; }
  fi
  if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$q" ]; then
    command -v "qemu-$q-static" >/dev/null ||
      { echo "qemu-user-static is not installed (apt-get install qemu-user-static)"; return; }
    command -v update-binfmts >/dev/null && update-binfmts --enable "qemu-$q" >/dev/null 2>&1
    [ -e "/proc/sys/fs/binfmt_misc/qemu-$q" ] ||
      { echo "binfmt_misc has no qemu-$q handler and it cannot be registered"; return; }
  fi
  # F (fix binary): the interpreter is opened at registration, so it works inside a chroot.
  grep -q '^flags:.*F' "/proc/sys/fs/binfmt_misc/qemu-$q" ||
    { echo "the qemu-$q binfmt handler lacks the F flag (it would not work in a chroot)"; return; }
}

# The base tarball of ARCH, made once.
base_tarball() {
  local arch="$1" tar="$CACHE/base/$SUITE-$1.tar"
  if [ ! -s "$tar" ]; then
    local dir="$CACHE/base/$SUITE-$arch.tmp"
    rm -rf "$dir"
    mkdir -p "$dir" "$CACHE/apt/$arch"
    say "debootstrap $SUITE $arch (once; kept in $CACHE/base)"
    # The .debs land in the shared apt cache, so a later chroot does not fetch them again.
    debootstrap --variant=minbase --arch="$arch" --cache-dir="$CACHE/apt/$arch" \
      "$SUITE" "$dir" "$MIRROR" >"$CACHE/base/debootstrap-$arch.log" 2>&1 ||
      die "debootstrap $SUITE $arch failed (log: $CACHE/base/debootstrap-$arch.log)"
    rm -f "$dir"/var/cache/apt/archives/*.deb
    tar -C "$dir" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
    rm -rf "$dir"
  fi
  echo "$tar"
}

# A fresh chroot of ARCH in DIR (which must not exist yet or be empty).
new_chroot() {
  local arch="$1" dir="$2" tar
  tar="$(base_tarball "$arch")" || exit 1
  mkdir -p "$dir"
  tar -C "$dir" -xf "$tar"
  echo 'APT::Install-Recommends "false"; APT::Install-Suggests "false";' \
    >"$dir/etc/apt/apt.conf.d/90no-recommends"
}

# Run a shell script in the chroot DIR of ARCH: /proc, /dev and the arch's apt cache are
# mounted in a private namespace; extra "SRC:DEST" binds (DEST inside the chroot) follow.
#   in_chroot ARCH DIR SCRIPT [SRC:DEST ...]
in_chroot() {
  local arch="$1" dir="$2" script="$3"
  shift 3
  local binds="" used="$dir/ $CACHE/"
  local b
  for b in "$@"; do
    mkdir -p "$dir/${b#*:}"
    binds="$binds mount --bind '${b%%:*}' '$dir/${b#*:}';"
    used="$used ${b%%:*}/"
  done
  cp -L /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
  mkdir -p "$CACHE/apt/$arch/partial"
  # The namespace starts with a copy of every mount of the host. A loop device mounted there
  # (a disk image, a snap) would stay busy for as long as the build runs, even once the host
  # unmounts it: the copies are detached here (lazily), but for those holding a path used.
  unshare --mount --propagation private sh -c "
    set -e
    findmnt -rn -o TARGET,SOURCE | awk '\$2 ~ /^\/dev\/loop/ { print \$1 }' |
      while read -r m; do
        for p in $used; do case \"\$p\" in \"\${m%/}\"/*) continue 2 ;; esac; done
        umount -l \"\$m\" 2>/dev/null || true
      done
    mount -t proc proc '$dir/proc'
    mount --rbind /dev '$dir/dev'
    mount --bind '$CACHE/apt/$arch' '$dir/var/cache/apt/archives'
    $binds
    exec chroot '$dir' /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
      LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive /bin/sh -ec \"\$0\"
  " "$script"
}

# The persistent build chroot of ARCH, with Node.js and a C++ tool chain.
build_chroot() {
  local arch="$1" dir="$CACHE/build/$1"
  if [ ! -e "$dir/.ready" ]; then
    rm -rf "$dir"
    new_chroot "$arch" "$dir"
    say "installing nodejs and the build tools into the $arch build chroot (once)"
    in_chroot "$arch" "$dir" 'apt-get update -qq && apt-get install -y -qq nodejs libnode-dev g++ make python3 >/dev/null' ||
      die "apt-get install in the $arch build chroot failed"
    touch "$dir/.ready"
  fi
  echo "$dir"
}
