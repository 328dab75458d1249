# The production node_modules for one architecture, native modules compiled from source for
# it and for the Node ABI of Debian trixie's nodejs; sourced after chroot.sh.
#
# The JavaScript comes from the registry through the host's npm with --ignore-scripts (it
# is the same on every architecture); then node-gyp compiles each native module inside the
# trixie build chroot of that architecture (under qemu for arm64/armhf), against trixie's
# Node headers. No prebuilt binary is downloaded: prebuild-install never runs, and the
# prebuilt binaries that @serialport/bindings-cpp carries in its npm tarball are deleted.
# The result is cached by architecture, ABI and lockfile hash.

# Debian trixie's nodejs 20 (NODE_MODULE_VERSION 115); build_modules checks it.
TARGET_ABI=115
# Part of the cache key: raise it when a change here alters what the build produces.
RECIPE=1
NATIVE_MODULES=(better-sqlite3 @serialport/bindings-cpp i2c-bus unix-dgram)

modules_key() {
  local arch="$1" repo="$2" lock
  lock="$(sha256sum <"$repo/package-lock.json" | cut -c1-12)"
  echo "$arch-abi$TARGET_ABI-$lock-r$RECIPE"
}

# Build the native modules on this host instead of in a chroot: only for the host's own
# architecture, when the host's node has the target ABI and glibc is not newer than trixie's.
host_can_build() {
  local arch="$1"
  [ "${EDGE_AGENT_NATIVE_BUILD:-}" != chroot ] || return 1
  [ "$arch" = "$(host_arch)" ] || return 1
  command -v node >/dev/null && command -v g++ >/dev/null && command -v make >/dev/null || return 1
  [ "$(node -p process.versions.modules)" = "$TARGET_ABI" ] || return 1
  local glibc
  glibc="$(getconf GNU_LIBC_VERSION | awk '{print $2}')"
  [ "$(printf '%s\n2.41\n' "$glibc" | sort -V | tail -1)" = 2.41 ]
}

# Delete what the running agent does not need: compiler output other than the .node files,
# the SQLite sources, other platforms' prebuilt binaries.
prune_modules() {
  local nm="$1" m
  for m in "${NATIVE_MODULES[@]}"; do
    [ -d "$nm/$m" ] || continue
    if [ -d "$nm/$m/build" ]; then
      find "$nm/$m/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
      find "$nm/$m/build/Release" -mindepth 1 -maxdepth 1 ! -name '*.node' -exec rm -rf {} +
    fi
    rm -rf "$nm/$m/prebuilds" "$nm/$m/deps" "$nm/$m/src"
  done
  # Files that name no runtime purpose and trip lintian.
  find "$nm" \( -name '.npmignore' -o -name '.travis.yml' -o -name '.eslintrc*' \
    -o -name '*.gyp' -o -name '*.gypi' -o -name 'binding.gyp' \) -type f -delete
}

# Echo the cached node_modules directory for ARCH, building it first if needed.
#   production_modules ARCH REPO
production_modules() {
  local arch="$1" repo="$2" key out work
  key="$(modules_key "$arch" "$repo")"
  out="$CACHE/modules/$key"
  if [ -d "$out/node_modules" ]; then
    say "node_modules for $arch: cached ($key)"
    echo "$out/node_modules"
    return
  fi
  work="$out.tmp"
  rm -rf "$work"
  mkdir -p "$work"
  cp "$repo/package.json" "$repo/package-lock.json" "$work/"
  say "npm ci --omit=dev --ignore-scripts for $arch (JavaScript only)"
  (cd "$work" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >&2) ||
    die "npm ci in $work failed"

  local mods=() m
  for m in "${NATIVE_MODULES[@]}"; do [ -d "$work/node_modules/$m" ] && mods+=("$m"); done
  local started=$SECONDS
  local gyp
  gyp="$(npm root -g)/npm/node_modules"
  [ -f "$gyp/node-gyp/bin/node-gyp.js" ] || die "node-gyp not found under $gyp (it comes with npm)"
  # npm_config_* also reach node-gyp; build_from_source for any module that would look for a
  # prebuilt binary.
  # Debian's hardening flags (as dpkg-buildflags gives them), which node-gyp's Makefiles
  # take from the environment; the .node files are stripped as Debian packages ship them.
  local build="export npm_config_build_from_source=true JOBS=${EDGE_AGENT_BUILD_JOBS:-2}
    export CPPFLAGS='-D_FORTIFY_SOURCE=2' CFLAGS='-fstack-protector-strong' \\
      CXXFLAGS='-fstack-protector-strong' LDFLAGS='-Wl,-z,relro -Wl,-z,now'
    for m in ${mods[*]}; do
      echo \"package: compiling \$m\" >&2
      (cd \"\$1/node_modules/\$m\" && node \"\$2/node-gyp/bin/node-gyp.js\" rebuild --release \$NODEDIR >&2)
    done
    find \"\$1/node_modules\" -path '*/build/Release/*.node' -exec strip --strip-unneeded {} +"
  if host_can_build "$arch"; then
    say "compiling ${mods[*]} on this host ($arch, Node ABI $TARGET_ABI)"
    local nodedir
    nodedir="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
    local arg=""
    [ ! -f "$nodedir/include/node/node.h" ] || arg="--nodedir=$nodedir"
    NODEDIR="$arg" bash -ec "set -- '$work' '$gyp'; $build" ||
      die "compiling the native modules failed"
  else
    local dir
    dir="$(build_chroot "$arch")" || exit 1
    local abi
    abi="$(in_chroot "$arch" "$dir" 'node -p process.versions.modules')"
    [ "$abi" = "$TARGET_ABI" ] ||
      die "trixie's nodejs ($arch) has Node ABI $abi, this script targets $TARGET_ABI: update TARGET_ABI"
    say "compiling ${mods[*]} in the $arch chroot (under qemu this takes a while; cached afterwards)"
    # The time reported below is the compile's, not the first build chroot's.
    started=$SECONDS
    # node-gyp's own dependencies resolve only from a directory named node_modules.
    in_chroot "$arch" "$dir" "set -- /build /opt/npm/node_modules; NODEDIR=--nodedir=/usr; $build" \
      "$work:/build" "$gyp:/opt/npm/node_modules" || die "compiling the native modules for $arch failed"
  fi
  say "native modules for $arch built in $((SECONDS - started)) s"
  prune_modules "$work/node_modules"
  mv "$work" "$out"
  echo "$out/node_modules"
}
