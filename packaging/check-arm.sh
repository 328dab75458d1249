#!/usr/bin/env bash
# Opt-in check of the arm packages (too slow for every CI run): build edge-agent for each
# architecture, install it with apt in a clean Debian trixie chroot of that architecture
# under qemu-user, run check-config on the shipped config and `simulate --duration 10`
# against a mosquitto on this host, and print one Markdown table row per architecture for
# docs/packages.md: package size, install time, simulate result.
#
#   sudo packaging/check-arm.sh [--arch arm64,armhf] [--skip-build]
#
# Needs root, debootstrap, qemu-user-static, mosquitto and mosquitto_sub on this host.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=packaging/chroot.sh
. "$REPO/packaging/chroot.sh"

ARCHES=arm64,armhf
BUILD_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCHES="${2:?--arch needs a list}"; shift 2 ;;
    --skip-build) BUILD_ARGS+=(--skip-build); shift ;;
    *) die "unknown option $1" ;;
  esac
done
command -v mosquitto >/dev/null && command -v mosquitto_sub >/dev/null ||
  die "mosquitto and mosquitto_sub are needed (apt-get install mosquitto mosquitto-clients)"

WORK="$(mktemp -d)"
BROKER_PID=""
cleanup() {
  [ -z "$BROKER_PID" ] || kill "$BROKER_PID" 2>/dev/null || true
  # The chroots' mounts live in private namespaces that ended with their commands.
  if grep -q " $WORK/" /proc/self/mountinfo; then
    echo "check-arm: mounts left below $WORK; not deleting it" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

PORT="$(node -e 's=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
printf 'user root\nlistener %s 127.0.0.1\nallow_anonymous true\n' "$PORT" >"$WORK/mosquitto.conf"
mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
BROKER_PID=$!

echo "| architecture | package | native modules built | apt install | check-config | simulate --duration 10 |"
echo "| --- | --: | --: | --: | --- | --- |"
IFS=, read -r -a arch_list <<<"$ARCHES"
for arch in "${arch_list[@]}"; do
  reason="$(chroot_unavailable "$arch")"
  if [ -n "$reason" ]; then
    echo "check-arm: skipping $arch: $reason" >&2
    echo "| $arch | skipped: $reason | | | | |"
    continue
  fi
  log="$WORK/build-$arch.log"
  t0=$SECONDS
  deb="$("$REPO/packaging/build-deb.sh" --arch "$arch" --out "$WORK/out" "${BUILD_ARGS[@]}" 2>"$log" | tail -1)" ||
    { cat "$log" >&2; die "building the $arch package failed"; }
  BUILD_ARGS=(--skip-build)
  native="$(sed -n 's/.*native modules for .* built in \([0-9]*\) s/\1 s/p' "$log")"
  [ -n "$native" ] || native="cached"
  echo "check-arm: $arch package built in $((SECONDS - t0)) s" >&2
  size="$(du -k "$deb" | cut -f1)"

  root="$WORK/root-$arch"
  new_chroot "$arch" "$root"
  cp "$deb" "$root/tmp/"
  in_chroot "$arch" "$root" 'apt-get update -qq' >/dev/null
  t0=$SECONDS
  in_chroot "$arch" "$root" "apt-get install -y -q /tmp/$(basename "$deb")" >"$WORK/install-$arch.log" 2>&1 ||
    { cat "$WORK/install-$arch.log" >&2; die "apt install on $arch failed"; }
  install_s=$((SECONDS - t0))
  machine="$(in_chroot "$arch" "$root" 'echo "$(uname -m), node $(node --version)"')"

  if in_chroot "$arch" "$root" 'edge-agent check-config /etc/edge-agent/config.yaml' >"$WORK/check-$arch.log" 2>&1; then
    check=ok
  else
    check="failed: $(head -1 "$WORK/check-$arch.log")"
  fi

  gw="check-$arch"
  timeout 300 mosquitto_sub -h 127.0.0.1 -p "$PORT" -q 1 -t "edge/$gw/telemetry" >"$WORK/sub-$arch.jsonl" &
  sub=$!
  sleep 1 # mosquitto_sub has no ready signal; the agent's first batch comes after a window anyway
  t0=$SECONDS
  if in_chroot "$arch" "$root" "cd /tmp && edge-agent simulate --duration 10 --window 1000 --gateway $gw --broker mqtt://127.0.0.1:$PORT --state-dir /tmp/sim" >"$WORK/sim-$arch.log" 2>&1; then
    sim_exit=0
  else
    sim_exit=$?
  fi
  sim_s=$((SECONDS - t0))
  sleep 1
  kill "$sub" 2>/dev/null || true
  wait "$sub" 2>/dev/null || true
  result="$(node -e '
    const seqs = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").filter(Boolean)
      .map((l) => JSON.parse(l)).map((b) => b.seq);
    const windows = seqs.length;
    const max = Math.max(0, ...seqs);
    const missing = [];
    for (let s = 1; s <= max; s++) if (!seqs.includes(s)) missing.push(s);
    console.log(`${windows} batches, seq 1..${max}` + (missing.length ? `, missing ${missing.join(",")}` : ", no gap"));
  ' "$WORK/sub-$arch.jsonl")"
  echo "check-arm: $arch ($machine): simulate exit $sim_exit after $sim_s s: $result" >&2
  [ "$sim_exit" -eq 0 ] || tail -20 "$WORK/sim-$arch.log" >&2
  echo "| $arch ($machine) | $size KiB | $native | $install_s s | $check | exit $sim_exit after $sim_s s; $result |"
done
