#!/usr/bin/env bash
# Install (or upgrade, or remove) edge-agent as a systemd service.
#
#   sudo systemd/install.sh                 install/upgrade from this built source tree
#   sudo systemd/install.sh --enable        ... and `systemctl enable --now edge-agent`
#   sudo systemd/install.sh --uninstall     remove the program and unit; keep config + spool
#   sudo systemd/install.sh --uninstall --purge   ... and the config, password and spool
#
# What goes where:
#   /opt/edge-agent/                 dist/, docs/, package.json, package-lock.json, node_modules
#                                    (the tree's own, built by `npm ci`, pruned to production)
#   /usr/local/bin/edge-agent        a wrapper: node /opt/edge-agent/dist/agent/cli.js "$@"
#   /etc/systemd/system/edge-agent.service
#   /etc/edge-agent/config.yaml      the example, only if there is no config yet (never replaced)
#   /etc/edge-agent/config.example.yaml   always the current example, for reference
#   /etc/edge-agent/mqtt-password    mode 0600 root; empty unless --mqtt-password-stdin
#
# Idempotent: running it again gives the same result and keeps config, password and spool.
# The config is validated with `edge-agent check-config` before the service is (re)started.
# Nothing is compiled here: the native modules `npm ci` built in the tree are copied and the
# copy pruned to production. The new program is staged next to the installed one, which
# stays in place until the new one replaces it (an interrupted run is rolled back next time).
# A Debian package (npm run package, docs/packages.md) does all this without a build on the Pi.
#
# Options (or environment):
#   --root DIR    (EDGE_AGENT_ROOT)   install below DIR as if it were /; no systemctl, no
#                                     groupadd (image building, tests)
#   --prefix DIR  (EDGE_AGENT_PREFIX) program directory, default /opt/edge-agent
#   --source DIR                      the built tree to install, default this script's repo
#   --skip-npm                        keep the installed node_modules (no copy, no prune)
#   --mqtt-password-stdin             store the MQTT password read from stdin
#   NODE=/path/to/node                the node binary for the unit (default: command -v node)
#   NPM=/path/to/npm                  the npm binary (default: npm)
set -euo pipefail
umask 022

ROOT="${EDGE_AGENT_ROOT:-}"
PREFIX="${EDGE_AGENT_PREFIX:-/opt/edge-agent}"
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ACTION=install
PURGE=0
ENABLE=0
SKIP_NPM=0
PASSWORD_STDIN=0
GROUPS_NEEDED=(i2c dialout gpio)

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }
die() {
  echo "install.sh: $*" >&2
  exit 1
}
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
    --root=*) ROOT="${1#*=}"; shift ;;
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) PREFIX="${1#*=}"; shift ;;
    --source) SOURCE="${2:?--source needs a directory}"; shift 2 ;;
    --source=*) SOURCE="${1#*=}"; shift ;;
    --uninstall) ACTION=uninstall; shift ;;
    --purge) PURGE=1; shift ;;
    --enable) ENABLE=1; shift ;;
    --skip-npm) SKIP_NPM=1; shift ;;
    --mqtt-password-stdin) PASSWORD_STDIN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

case "$PREFIX" in /*) ;; *) die "--prefix must be absolute, got $PREFIX" ;; esac
if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT"
  ROOT="$(cd "$ROOT" && pwd)"
  [ "$ROOT" != / ] || ROOT=""
fi

# Paths on the target system (as the service sees them) and where we write them (below ROOT).
UNIT_PATH=/etc/systemd/system/edge-agent.service
CONF_DIR=/etc/edge-agent
WRAPPER=/usr/local/bin/edge-agent
T_PREFIX="$ROOT$PREFIX"
T_UNIT="$ROOT$UNIT_PATH"
T_CONF="$ROOT$CONF_DIR"
T_WRAPPER="$ROOT$WRAPPER"

# systemctl only for the real root of a booted systemd system.
have_systemd() { [ -z "$ROOT" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; }

if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (sudo), or use --root DIR to install into a directory"
fi

uninstall() {
  if have_systemd; then
    systemctl disable --now edge-agent.service 2>/dev/null || true
  fi
  rm -f "$T_UNIT" "$T_WRAPPER"
  rm -rf "$T_PREFIX" "$T_PREFIX.new" "$T_PREFIX.old"
  if [ "$PURGE" -eq 1 ]; then
    # The spool may hold batches the broker never acknowledged: only with --purge.
    rm -rf "$T_CONF" "$ROOT/var/lib/edge-agent" "$ROOT/var/lib/private/edge-agent"
    say "removed edge-agent, its configuration and its spool"
  else
    say "removed edge-agent; kept $CONF_DIR and /var/lib/edge-agent (use --purge to remove them)"
  fi
  if have_systemd; then systemctl daemon-reload; fi
}

if [ "$ACTION" = uninstall ]; then
  uninstall
  exit 0
fi

# ---- install ----------------------------------------------------------------------------

[ -f "$SOURCE/dist/agent/cli.js" ] ||
  die "$SOURCE/dist/agent/cli.js not found: build first (npm ci && npm run build)"
for f in package.json package-lock.json systemd/edge-agent.service systemd/config.example.yaml; do
  [ -f "$SOURCE/$f" ] || die "$SOURCE/$f is missing"
done

NODE="${NODE:-$(command -v node || true)}"
if [ -z "$NODE" ] || [ ! -x "$NODE" ]; then
  die "node not found: install Node.js 20 or later (docs/install-raspberry-pi.md)"
fi
NODE_MAJOR="$("$NODE" -p 'process.versions.node.split(".")[0]')"
[ "$NODE_MAJOR" -ge 20 ] || die "Node.js $("$NODE" --version) is too old: 20 or later is needed"
NPM="${NPM:-npm}"

# An earlier run cut off between its two renames (step 5) left the old program in .old only:
# put it back before anything else.
if [ ! -e "$T_PREFIX" ] && [ -d "$T_PREFIX.old" ]; then
  mv "$T_PREFIX.old" "$T_PREFIX"
  say "restored $PREFIX from an interrupted earlier run"
fi

# 1. The program, staged next to the installed one: if the copy, the prune or the config
#    check fails, the running installation is untouched. A fresh copy each time (an upgrade
#    leaves no stale files), root-owned and not writable by the service (ProtectSystem=strict
#    anyway). On any exit before step 5 completes, the installed program is the old one.
STAGE="$T_PREFIX.new"
cleanup() {
  rm -rf "$STAGE"
  if [ ! -e "$T_PREFIX" ] && [ -d "$T_PREFIX.old" ]; then mv "$T_PREFIX.old" "$T_PREFIX"; fi
}
trap cleanup EXIT
rm -rf "$STAGE"
mkdir -p "$STAGE/systemd"
say "staging the agent in $STAGE"
cp -R "$SOURCE/dist" "$STAGE/dist"
[ ! -d "$SOURCE/docs" ] || cp -R "$SOURCE/docs" "$STAGE/docs"
cp "$SOURCE/systemd/edge-agent.service" "$SOURCE/systemd/config.example.yaml" "$STAGE/systemd/"
cp "$SOURCE/package.json" "$SOURCE/package-lock.json" "$STAGE/"
if [ "$SKIP_NPM" -eq 0 ]; then
  [ -d "$SOURCE/node_modules" ] ||
    die "$SOURCE/node_modules not found: run npm ci in $SOURCE first (it builds the native modules)"
  # The tree's own modules, native ones included, as built by `npm ci` for this node: those
  # the lockfile does not mark dev-only are copied (owned by root, not by the user who built
  # them), then npm prunes the copy to exactly the production tree.
  say "copying the production node_modules from $SOURCE (nothing is compiled)"
  mkdir -p "$STAGE/node_modules"
  "$NODE" -e '
    const lock = require(process.argv[1]);
    for (const [path, entry] of Object.entries(lock.packages ?? {}))
      if (/^node_modules\/(@[^/]+\/)?[^/]+$/.test(path) && !entry.dev) console.log(path.slice(13));
  ' "$SOURCE/package-lock.json" >"$STAGE/.modules"
  while IFS= read -r module; do
    [ -d "$SOURCE/node_modules/$module" ] || continue
    mkdir -p "$(dirname "$STAGE/node_modules/$module")"
    cp -R "$SOURCE/node_modules/$module" "$STAGE/node_modules/$module"
  done <"$STAGE/.modules"
  rm -f "$STAGE/.modules"
  [ ! -d "$SOURCE/node_modules/.bin" ] || cp -R "$SOURCE/node_modules/.bin" "$STAGE/node_modules/.bin"
  (cd "$STAGE" && "$NPM" prune --omit=dev --no-audit --no-fund) ||
    die "npm prune --omit=dev failed in $STAGE; $PREFIX is unchanged"
elif [ -e "$T_PREFIX/node_modules" ]; then
  cp -R "$T_PREFIX/node_modules/." "$STAGE/node_modules"
else
  die "--skip-npm, but $T_PREFIX/node_modules does not exist yet"
fi
chmod -R u=rwX,go=rX "$STAGE"
# better-sqlite3 built by `npm ci` under another Node major would only fail at the service's
# start: load it with the unit's node now.
if [ -d "$STAGE/node_modules/better-sqlite3" ] &&
  ! abi="$("$NODE" -e 'new (require(process.argv[1]))(":memory:").close()' \
    "$STAGE/node_modules/better-sqlite3" 2>&1)"; then
  die "the native modules in $SOURCE/node_modules do not load with $NODE ($("$NODE" --version)): run npm ci with that node, then install.sh again ($(printf '%s\n' "$abi" | grep -m1 -E 'NODE_MODULE_VERSION|Error' || true))"
fi

# 2. Configuration: the example only where there is none; an existing config is the user's.
mkdir -p "$T_CONF"
chmod 0755 "$T_CONF"
install -m 0644 "$SOURCE/systemd/config.example.yaml" "$T_CONF/config.example.yaml"
if [ -e "$T_CONF/config.yaml" ]; then
  say "keeping the existing $CONF_DIR/config.yaml"
else
  install -m 0644 "$SOURCE/systemd/config.example.yaml" "$T_CONF/config.yaml"
  say "installed the example configuration as $CONF_DIR/config.yaml: edit it for your sensors"
fi

# 3. The MQTT password credential: root-only; systemd hands it to the service.
(
  umask 077
  if [ "$PASSWORD_STDIN" -eq 1 ]; then
    IFS= read -r password || [ -n "${password:-}" ] || die "no password on stdin"
    printf '%s' "$password" >"$T_CONF/mqtt-password.tmp"
    mv -f "$T_CONF/mqtt-password.tmp" "$T_CONF/mqtt-password"
    say "stored the MQTT password in $CONF_DIR/mqtt-password"
  elif [ ! -e "$T_CONF/mqtt-password" ]; then
    : >"$T_CONF/mqtt-password"
  fi
)
chmod 0600 "$T_CONF/mqtt-password"
[ "$(id -u)" -ne 0 ] || chown root:root "$T_CONF/mqtt-password"

# 4. Validate with the new program before anything is replaced or started: a bad config
#    would only restart-loop.
if ! "$NODE" "$STAGE/dist/agent/cli.js" check-config "$T_CONF/config.yaml"; then
  die "$CONF_DIR/config.yaml is invalid (above); fix it, then run install.sh again"
fi

# 5. Swap the staged program in: two renames, so the old program is only ever in
#    $PREFIX or $PREFIX.old (the EXIT trap, or the next run, puts it back from there).
rm -rf "$T_PREFIX.old"
if [ -e "$T_PREFIX" ]; then mv "$T_PREFIX" "$T_PREFIX.old"; fi
mv "$STAGE" "$T_PREFIX"
rm -rf "$T_PREFIX.old"
trap - EXIT
say "installed the agent into $T_PREFIX"

# 6. The command on PATH.
mkdir -p "$(dirname "$T_WRAPPER")"
printf '#!/bin/sh\n# installed by edge-agent install.sh\nexec '"'"'%s'"'"' '"'"'%s'"'"' "$@"\n' \
  "$NODE" "$PREFIX/dist/agent/cli.js" >"$T_WRAPPER"
chmod 0755 "$T_WRAPPER"

# 7. The unit, with this system's node and prefix.
mkdir -p "$(dirname "$T_UNIT")"
sed -e "s#/usr/bin/node #$NODE #" -e "s#/opt/edge-agent/#$PREFIX/#g" \
  "$SOURCE/systemd/edge-agent.service" >"$T_UNIT.tmp"
chmod 0644 "$T_UNIT.tmp"
mv -f "$T_UNIT.tmp" "$T_UNIT"

# 8. Device groups: the unit's SupplementaryGroups must exist or the start fails (216/GROUP).
#    Raspberry Pi OS has them all; plain Debian may lack i2c and gpio.
if [ -z "$ROOT" ]; then
  for g in "${GROUPS_NEEDED[@]}"; do
    getent group "$g" >/dev/null || { groupadd --system "$g" && say "created group $g"; }
  done
else
  say "--root: not creating groups (${GROUPS_NEEDED[*]}) on this host"
fi

# 9. systemd.
if have_systemd; then
  systemctl daemon-reload
  if [ "$ENABLE" -eq 1 ]; then
    systemctl enable edge-agent.service
    systemctl restart edge-agent.service
    say "edge-agent enabled and started: journalctl -u edge-agent -f"
  elif systemctl is-active --quiet edge-agent.service; then
    systemctl restart edge-agent.service
    say "edge-agent upgraded and restarted"
  else
    say "next: edit $CONF_DIR/config.yaml, then: systemctl enable --now edge-agent"
  fi
else
  say "installed into ${ROOT:-/} (systemctl not used)"
fi
