#!/usr/bin/env bash
# CI on the Node.js majors people install from elsewhere (Debian trixie ships 20): for each,
# build, run the publisher and spool tests and `edge-agent simulate --duration 10` against a
# mosquitto, with every native module (better-sqlite3, @serialport/bindings-cpp, i2c-bus,
# unix-dgram) compiled from source for that Node's ABI.
#
#   .ci/node-versions.sh [--node 22,24]
#
# The Node binaries and headers come from the npm registry (node-linux-<arch>, the package
# the `node` package installs), so node-gyp compiles offline against them; no prebuilt
# binary is downloaded. Each major works in a copy of the repository's tracked files under
# the cache, never in this checkout's node_modules. Cached: the Node tarballs and each
# copy's node_modules, keyed by Node ABI and lockfile hash, so a rerun compiles nothing.
#
#   EDGE_AGENT_NODE_CACHE   the cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/edge-agent-node-versions)
# Needs git, npm (the host's, any Node), g++, make, python3, mosquitto and mosquitto_sub.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${EDGE_AGENT_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-agent-node-versions}"
MAJORS=22,24
while [ $# -gt 0 ]; do
  case "$1" in
    --node) MAJORS="${2:?--node needs a list of majors}"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "node-versions: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "node-versions: $*" >&2; }
MAJOR=""
fail() {
  echo "node-versions: FAILED on Node ${MAJOR:-?}: $*" >&2
  exit 1
}
for tool in git npm g++ make python3 mosquitto mosquitto_sub; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done

case "$(uname -m)" in
  x86_64) PLATFORM=linux-x64 ;;
  aarch64) PLATFORM=linux-arm64 ;;
  armv7l) PLATFORM=linux-armv7l ;;
  *) fail "no node-linux-* package for $(uname -m)" ;;
esac

# The newest node-linux-<arch> of MAJOR, unpacked into the cache; echoes its directory.
# Offline, the newest one already cached is used.
node_dir() {
  local major="$1" version dir tgz
  version="$(npm view "node-$PLATFORM@$major" version --json 2>/dev/null |
    node -e 'let v=JSON.parse(require("fs").readFileSync(0,"utf8")); v=[].concat(v); console.log(v[v.length-1])')" ||
    version="$(find "$CACHE/node" -maxdepth 1 -name "$major.*" -printf '%f\n' 2>/dev/null | sort -V | tail -1)"
  [ -n "$version" ] || fail "node-$PLATFORM@$major: not in the npm registry and not cached"
  dir="$CACHE/node/$version"
  if [ ! -x "$dir/bin/node" ]; then
    say "fetching node-$PLATFORM@$version from the npm registry"
    mkdir -p "$CACHE/node"
    tgz="$(cd "$CACHE/node" && npm pack "node-$PLATFORM@$version" --silent)" ||
      fail "npm pack node-$PLATFORM@$version failed"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    tar -C "$dir.tmp" --strip-components=1 -xzf "$CACHE/node/$tgz" && rm -f "$CACHE/node/$tgz"
    [ -f "$dir.tmp/include/node/node.h" ] || fail "node-$PLATFORM@$version carries no headers"
    mv "$dir.tmp" "$dir"
    # Older releases of the major are not needed any more.
    find "$CACHE/node" -mindepth 1 -maxdepth 1 -type d -name "$major.*" ! -name "$version" -exec rm -rf {} +
  fi
  echo "$dir"
}

# The repository's tracked files (as they are in the checkout) in WORK, its node_modules kept.
copy_repo() {
  local work="$1"
  mkdir -p "$work"
  find "$work" -mindepth 1 -maxdepth 1 ! -name node_modules -exec rm -rf {} +
  (cd "$REPO" && git ls-files -z --cached | xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
    tar --null -T - -cf -) | tar -C "$work" -xf - || fail "copying the repository to $work failed"
}

# Telemetry seqs on mosquitto_sub's output FILE: "N batches, seq 1..M, no gap" or the gaps.
seq_summary() {
  node -e '
    const seqs = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n")
      .filter(Boolean).map((l) => JSON.parse(l).seq);
    const max = Math.max(0, ...seqs);
    const missing = [];
    for (let s = 1; s <= max; s++) if (!seqs.includes(s)) missing.push(s);
    console.log(`${seqs.length} batches, seq 1..${max}` + (missing.length ? `, missing ${missing.join(",")}` : ", no gap"));
    if (seqs.length === 0 || missing.length) process.exit(1);
  ' "$1"
}

# simulate --duration 10 in WORK against a mosquitto of its own; fails unless it exits 0
# and every seq from 1 arrived.
run_simulate() {
  local work="$1" tmp port broker sub status=0 result
  tmp="$(mktemp -d)"
  port="$(node -e 's=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
  printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$tmp/mosquitto.conf"
  [ "$(id -u)" -ne 0 ] || echo 'user root' >>"$tmp/mosquitto.conf"
  mosquitto -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
  broker=$!
  local i
  for i in $(seq 50); do
    mosquitto_sub -h 127.0.0.1 -p "$port" -t probe -W 1 -E 2>/dev/null && break
    sleep 0.2
  done
  timeout 120 mosquitto_sub -h 127.0.0.1 -p "$port" -q 1 -t edge/nodecheck/telemetry >"$tmp/sub.jsonl" &
  sub=$!
  sleep 1 # mosquitto_sub has no ready signal; the first batch comes after a window anyway
  (cd "$work" && timeout 120 node dist/agent/cli.js simulate --duration 10 --window 1000 \
    --gateway nodecheck --broker "mqtt://127.0.0.1:$port" --state-dir "$tmp/state") >"$tmp/sim.log" 2>&1 ||
    status=$?
  sleep 1
  kill "$sub" "$broker" 2>/dev/null || true
  wait "$sub" "$broker" 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    tail -20 "$tmp/sim.log" >&2
    rm -rf "$tmp"
    fail "simulate --duration 10 exited $status (its last lines above)"
  fi
  result="$(seq_summary "$tmp/sub.jsonl")" || {
    tail -20 "$tmp/sim.log" >&2
    rm -rf "$tmp"
    fail "simulate --duration 10: ${result:-no telemetry received}"
  }
  rm -rf "$tmp"
  echo "$result"
}

# Load every native module the agent uses and open an SQLite database in memory.
check_native() {
  node -e '
    const Database = require("better-sqlite3");
    const db = new Database(":memory:");
    const v = db.prepare("select sqlite_version() as v").get().v;
    db.close();
    require("@serialport/bindings-cpp");
    require("unix-dgram");
    try { require("i2c-bus"); } catch (e) { if (e.code !== "MODULE_NOT_FOUND") throw e; }
    console.log(`better-sqlite3 ${require("better-sqlite3/package.json").version} (SQLite ${v}), ` +
      `ABI ${process.versions.modules}`);
  '
}

LOCK="$(sha256sum <"$REPO/package-lock.json" | cut -c1-12)"
IFS=, read -r -a majors <<<"$MAJORS"
for MAJOR in "${majors[@]}"; do
  started=$SECONDS
  nd="$(node_dir "$MAJOR")" || exit 1
  work="$CACHE/work/node$MAJOR"
  copy_repo "$work"
  (
    # The majors' own node for npm, node-gyp, tsc and vitest; node-gyp compiles against its
    # headers (npm_config_nodedir); build-from-source (for npm ci only: npm warns about it
    # elsewhere) keeps prebuild-install and node-gyp-build from using a downloaded or
    # shipped binary.
    export PATH="$nd/bin:$PATH" npm_config_nodedir="$nd"
    export JOBS="${EDGE_AGENT_BUILD_JOBS:-2}"
    cd "$work"
    version="$(node --version)"
    # Keyed by ABI, not release: a new patch release of the major reuses the modules.
    key="abi$(node -p process.versions.modules)-$LOCK"
    if [ "$(cat node_modules/.edge-agent-key 2>/dev/null)" != "$key" ]; then
      say "npm ci on node $version (native modules compile from source)"
      rm -rf node_modules
      t0=$SECONDS
      npm_config_build_from_source=true npm ci --no-audit --no-fund --loglevel=error >"$work.npm-ci.log" 2>&1 ||
        { tail -30 "$work.npm-ci.log" >&2; fail "npm ci failed (log: $work.npm-ci.log)"; }
      say "npm ci on node $version took $((SECONDS - t0)) s"
      echo "$key" >node_modules/.edge-agent-key
    else
      say "node_modules for node $version: cached"
    fi
    native="$(check_native 2>&1)" || { echo "$native" >&2; fail "a native module does not load"; }
    say "node $version: $native"
    npm run build --silent >"$work.build.log" 2>&1 ||
      { cat "$work.build.log" >&2; fail "npm run build failed"; }
    say "node $version: build ok"
    npx vitest run test/agent/publish/ --reporter=dot >"$work.test.log" 2>&1 ||
      { tail -60 "$work.test.log" >&2; fail "the publisher and spool tests failed (log: $work.test.log)"; }
    say "node $version: publisher and spool tests:$(sed 's/\x1b\[[0-9;]*m//g' "$work.test.log" | grep -E '^ *Tests ' | tr -s ' ')"
    sim="$(run_simulate "$work")" || exit 1
    say "node $version: simulate --duration 10: $sim"
  ) || exit 1
  say "Node $MAJOR passed in $((SECONDS - started)) s"
done
