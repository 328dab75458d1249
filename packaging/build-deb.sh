#!/usr/bin/env bash
# Build edge-agent_<version>_<arch>.deb for amd64, arm64 and armhf (`npm run package`).
#
#   packaging/build-deb.sh [--arch amd64,arm64,armhf] [--version V] [--out DIR] [--skip-build] [--lint]
#
# Each package holds the built dist/, the production node_modules with the native modules
# (better-sqlite3, @serialport/bindings-cpp, i2c-bus, unix-dgram) compiled from source for
# that architecture and Debian trixie's Node ABI, the docs and the systemd unit, and
# depends on Debian's nodejs (>= 20). The native modules of a foreign architecture are
# compiled in a trixie chroot of it under qemu-user-static (packaging/chroot.sh); they are
# cached by architecture, ABI and lockfile hash, so a change to the JavaScript alone
# rebuilds all three packages in seconds. An architecture whose chroot cannot be made here
# is skipped with the reason; the exit status is 1 only if a build failed.
#
#   --arch LIST     comma-separated architectures (default: amd64,arm64,armhf)
#   --version V     package version (default: package.json's version)
#   --out DIR       where the .deb files go (default: dist-packages/)
#   --skip-build    use the existing dist/ instead of `npm run build`
#   --lint          run lintian on each package (when installed)
#   EDGE_AGENT_PKG_CACHE   the cache directory (packaging/chroot.sh)
set -euo pipefail
umask 022
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=packaging/chroot.sh
. "$REPO/packaging/chroot.sh"
# shellcheck source=packaging/node-modules.sh
. "$REPO/packaging/node-modules.sh"

ARCHES=amd64,arm64,armhf
VERSION=""
OUT="$REPO/dist-packages"
BUILD=1
LINT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCHES="${2:?--arch needs a list}"; shift 2 ;;
    --arch=*) ARCHES="${1#*=}"; shift ;;
    --version) VERSION="${2:?--version needs a value}"; shift 2 ;;
    --version=*) VERSION="${1#*=}"; shift ;;
    --out) OUT="${2:?--out needs a directory}"; shift 2 ;;
    --out=*) OUT="${1#*=}"; shift ;;
    --skip-build) BUILD=0; shift ;;
    --lint) LINT=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[ -n "$VERSION" ] || VERSION="$(node -p "require('$REPO/package.json').version")"
[[ "$VERSION" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "--version $VERSION is not a Debian version"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (a Debian or Ubuntu host is needed)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

if [ "$BUILD" -eq 1 ]; then
  say "npm run build"
  (cd "$REPO" && npm run build --silent >&2) || die "npm run build failed"
fi
[ -f "$REPO/dist/agent/cli.js" ] || die "dist/agent/cli.js missing: npm run build"

PREFIX=/usr/lib/edge-agent
# The Node.js major of TARGET_ABI: the native modules load with no other (Debian names no
# virtual package for the ABI, so the version range says it; NodeSource's 20.x fits too).
NODE_MAJOR=20
DOCDIR=/usr/share/doc/edge-agent

# What lintian rightly objects to in a copy of the cached node_modules: shared objects
# marked executable, other files marked executable that are no scripts, VCS files, and
# better-sqlite3's test extension.
tidy_modules() {
  local nm="$1" f
  find "$nm" -name test_extension.node -path '*/build/Release/*' -delete
  find "$nm" -type f \( -name '.gitattributes' -o -name '.gitignore' -o -name '.gitmodules' \) -delete
  find "$nm" -type f -name '*.node' -exec chmod 0644 {} +
  while IFS= read -r -d '' f; do
    [ "$(head -c2 "$f")" = '#!' ] || chmod a-x "$f"
  done < <(find "$nm" -type f -perm /111 -print0)
}

# Depends for the native modules' shared libraries: libc6 at the newest GLIBC_ symbol
# version they use (readelf reads any architecture's ELF), libstdc++6 and libgcc-s1.
native_depends() {
  local nm="$1" libs glibc
  libs="$(find "$nm" -name '*.node' -path '*/build/Release/*' -print0 | xargs -0 -r readelf -d -W 2>/dev/null)"
  glibc="$(find "$nm" -name '*.node' -path '*/build/Release/*' -print0 | xargs -0 -r readelf -V -W 2>/dev/null |
    grep -o 'GLIBC_[0-9.]*' | cut -d_ -f2 | sort -V -u | tail -1)"
  [ -z "$glibc" ] || printf 'libc6 (>= %s), ' "$glibc"
  ! grep -q 'libgcc_s\.so\.1' <<<"$libs" || printf 'libgcc-s1, '
  ! grep -q 'libstdc++\.so\.6' <<<"$libs" || printf 'libstdc++6, '
}

# The file tree of the package for ARCH in STAGE.
stage_tree() {
  local arch="$1" stage="$2" modules="$3"
  mkdir -p "$stage$PREFIX" "$stage/usr/bin" "$stage/usr/lib/systemd/system" \
    "$stage/etc/edge-agent" "$stage$DOCDIR/examples" "$stage/DEBIAN"
  cp -R "$REPO/dist" "$stage$PREFIX/dist"
  cp -a "$modules" "$stage$PREFIX/node_modules"
  cp "$REPO/package.json" "$stage$PREFIX/"
  tidy_modules "$stage$PREFIX/node_modules"

  printf '#!/bin/sh\n# edge-agent command (Debian package)\nexec /usr/bin/node %s/dist/agent/cli.js "$@"\n' \
    "$PREFIX" >"$stage/usr/bin/edge-agent"
  chmod 0755 "$stage/usr/bin/edge-agent"

  # Paths of the package instead of install.sh's /opt/edge-agent.
  sed -e "s#^Documentation=file:/opt/edge-agent/docs/#Documentation=file:$DOCDIR/#" \
    -e "s#/opt/edge-agent/#$PREFIX/#g" \
    -e 's#^\(\# Installed by\) systemd/install.sh to .*#\1 the edge-agent package (local changes: systemctl edit edge-agent).#' \
    "$REPO/systemd/edge-agent.service" >"$stage/usr/lib/systemd/system/edge-agent.service"
  sed -e "s#/opt/edge-agent/docs/#$DOCDIR/#g" \
    -e 's#install.sh put it in#the package created#' \
    "$REPO/systemd/config.example.yaml" >"$stage/etc/edge-agent/config.yaml"
  cp "$stage/etc/edge-agent/config.yaml" "$stage$DOCDIR/examples/config.example.yaml"

  cp -R "$REPO/docs/." "$stage$DOCDIR/"
  cp "$REPO/README.md" "$stage$DOCDIR/"
  cp "$REPO/packaging/debian/copyright" "$stage$DOCDIR/copyright"
  {
    echo "edge-agent ($VERSION) unstable; urgency=medium"
    echo
    echo "  * Built from git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)."
    echo
    echo " -- edge-agent maintainers <maintainers@edge-agent.invalid>  $(date -R -d "@${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)}")"
  } | gzip -9n >"$stage$DOCDIR/changelog.gz"

  chmod -R u=rwX,go=rX "$stage"
  chmod 0755 "$stage$PREFIX/dist/agent/cli.js"
  install -m 0755 "$REPO/packaging/debian/postinst" "$REPO/packaging/debian/prerm" \
    "$REPO/packaging/debian/postrm" "$stage/DEBIAN/"
  echo /etc/edge-agent/config.yaml >"$stage/DEBIAN/conffiles"
  local size
  size="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
  cat >"$stage/DEBIAN/control" <<CONTROL
Package: edge-agent
Version: $VERSION
Architecture: $arch
Maintainer: edge-agent maintainers <maintainers@edge-agent.invalid>
Installed-Size: $size
Depends: $(native_depends "$stage$PREFIX/node_modules")nodejs (>= $NODE_MAJOR), nodejs (<< $((NODE_MAJOR + 1)))
Section: net
Priority: optional
Description: sensors to MQTT with a store-and-forward spool, for Raspberry Pi gateways
 edge-agent samples I2C, serial (Modbus RTU, ASCII), 1-Wire and network
 (Modbus TCP, HTTP JSON) temperature sensors concurrently, aggregates the
 readings in a worker thread and publishes batches to an MQTT broker without
 losing data across broker outages, crashes and restarts. It runs as a
 hardened systemd service.
 .
 The native modules are compiled for Debian's nodejs (Node ABI $TARGET_ABI).
CONTROL
  (cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 md5sum >DEBIAN/md5sums)
}

built=() skipped=() failed=()
IFS=, read -r -a arch_list <<<"$ARCHES"
for arch in "${arch_list[@]}"; do
  case "$arch" in amd64 | arm64 | armhf) ;; *) die "unsupported architecture $arch (amd64, arm64, armhf)" ;; esac
  if ! host_can_build "$arch"; then
    reason="$(chroot_unavailable "$arch")"
    if [ -n "$reason" ]; then
      echo "package: skipping $arch: $reason" >&2
      skipped+=("$arch")
      continue
    fi
  fi
  started=$SECONDS
  if ! modules="$(production_modules "$arch" "$REPO")"; then
    failed+=("$arch")
    continue
  fi
  stage="$(mktemp -d)"
  stage_tree "$arch" "$stage" "$modules"
  deb="$OUT/edge-agent_${VERSION}_$arch.deb"
  dpkg-deb --root-owner-group -Zzstd --build "$stage" "$deb" >/dev/null
  rm -rf "$stage"
  say "built $deb ($(du -k "$deb" | cut -f1) KiB) in $((SECONDS - started)) s"
  if [ "$LINT" -eq 1 ]; then
    if command -v lintian >/dev/null; then
      lintian --suppress-tags-from-file "$REPO/packaging/lintian-suppress" "$deb" >&2 ||
        say "lintian found problems in $deb (above)"
    else
      say "lintian not installed: not linted"
    fi
  fi
  echo "$deb"
  built+=("$arch")
done
say "built: ${built[*]:-none}; skipped: ${skipped[*]:-none}; failed: ${failed[*]:-none}"
[ ${#failed[@]} -eq 0 ]
