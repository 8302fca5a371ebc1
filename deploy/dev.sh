#!/usr/bin/env bash
# Baton developer script: the two commands of the README's quick start.
#
#   deploy/dev.sh run    install what is missing, build, run batond on the embedded
#                        PostgreSQL plus a small demo (two vendors, an agent each,
#                        packages submitted and completed); Ctrl-C stops it all
#   deploy/dev.sh test   install what is missing, build, run the whole test suite
#                        (a normal build, then an AddressSanitizer+UBSan build,
#                        then the libFuzzer targets built with clang, each run
#                        briefly over its seed corpus)
#
# Environment: BATON_DATA_DIR (demo data dir, default ./var), BATON_BUILD_DIR
# (default ./build), BATON_TEST_SANITIZE=0 to skip the sanitizer pass,
# BATON_TEST_FUZZ=0 to skip the fuzz pass, BATON_NO_INSTALL=1 to never call apt-get.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BATON_BUILD_DIR:-$ROOT/build}"
JOBS="$(nproc 2>/dev/null || echo 2)"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'dev.sh: %s\n' "$*" >&2; exit 1; }

# --- dependencies ---------------------------------------------------------------

DEB_PACKAGES=(
  build-essential cmake pkg-config
  libuv1-dev libnanomsg-dev libprotobuf-c-dev protobuf-c-compiler
  libpq-dev libcmocka-dev libsodium-dev libjansson-dev libinih-dev libmicrohttpd-dev
  postgresql-15 postgresql-client-15
  python3 procps util-linux
  clang libclang-rt-dev
  systemd man-db groff-base  # tests/package: systemd-analyze verify, man -l, groff
)

install_deps() {
  local missing=()
  for p in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "${BATON_NO_INSTALL:-0}" = 1 ] && die "missing Debian packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "missing packages (${missing[*]}) and no sudo"
    sudo=sudo
  fi
  say "installing: ${missing[*]}"
  # Baton runs its own clusters; keep Debian from creating and starting one.
  if [ ! -f /etc/postgresql-common/createcluster.conf ]; then
    $sudo mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

build() { # build DIR [cmake args...]
  local dir="$1"; shift
  cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
}

# --- test --------------------------------------------------------------------------

cmd_test() {
  install_deps
  say "building ($BUILD)"
  build "$BUILD"
  say "running the test suite"
  (cd "$BUILD" && ctest -j2 --output-on-failure --timeout 600)
  if [ "${BATON_TEST_SANITIZE:-1}" != 0 ]; then
    say "building with AddressSanitizer + UBSan ($BUILD-asan)"
    build "$BUILD-asan" -DBATON_SANITIZE=ON
    say "running the test suite under the sanitizers"
    (cd "$BUILD-asan" &&
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest -j2 --output-on-failure --timeout 900 -LE bench)
  fi
  if [ "${BATON_TEST_FUZZ:-1}" != 0 ]; then
    # Only the fuzz targets (tests/fuzz): libFuzzer needs clang, and every
    # library is rebuilt with its coverage hooks plus ASan and UBSan.
    say "building the fuzz targets with clang ($BUILD-fuzz)"
    CC=clang cmake -S "$ROOT" -B "$BUILD-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DBATON_FUZZ=ON >/dev/null
    cmake --build "$BUILD-fuzz" -j "$JOBS" --target baton_fuzz
    say "running each fuzz target over its seeds and new inputs (ctest -L fuzz)"
    (cd "$BUILD-fuzz" && ctest -j2 --output-on-failure -L fuzz)
  fi
  say "all tests passed"
}

# --- run: the broker plus a demo ------------------------------------------------------

# The embedded PostgreSQL runs as the postgres user when we are root, so the data
# directory must be reachable by it; a clone under /root is not.
pick_data_dir() {
  local dir="${BATON_DATA_DIR:-$ROOT/var}"
  if [ "$(id -u)" = 0 ] && [ -z "${BATON_DATA_DIR:-}" ]; then
    local parent; parent="$(dirname "$dir")"
    if ! runuser -u postgres -- test -x "$parent" 2>/dev/null; then
      dir=/var/lib/baton-demo
      say "the postgres user cannot reach $ROOT; using $dir for the demo data"
    fi
  fi
  echo "$dir"
}

cmd_run() {
  install_deps
  say "building ($BUILD)"
  build "$BUILD"
  local data; data="$(pick_data_dir)"
  mkdir -p "$data/logs"
  local batond="$BUILD/server/batond"
  local agent="$BUILD/worker/agentd/baton-agent"
  local ctl=("$BUILD/server/batonctl/batonctl" --control "$data/baton.sock")
  local agents_ep="${BATON_AGENTS:-tcp://127.0.0.1:7800}"
  # Global, not local: the EXIT trap may run after this function has returned.
  DEMO_PIDS=()
  DEMO_DATA="$data"

  # On Ctrl-C, or when this script is signalled alone: stop the agents (they
  # hand back work), then the broker (which stops its private PostgreSQL).
  # Background jobs of a non-interactive shell start with SIGINT ignored, but
  # batond and baton-agent install their own handlers, so a terminal's Ctrl-C
  # reaches them too.
  cleanup() {
    trap - INT TERM EXIT
    say "stopping agents and the broker (and its private PostgreSQL)"
    local p
    for p in "${DEMO_PIDS[@]:1}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${DEMO_PIDS[@]:1}"; do wait "$p" 2>/dev/null || true; done
    if [ ${#DEMO_PIDS[@]} -gt 0 ]; then
      # A Ctrl-C in a terminal reaches batond as well (it handles SIGINT
      # itself), and it is already stopping: a SIGTERM now would be a second
      # signal, which cuts its graceful stop short. Signal it only if it is
      # still up after a few seconds (this script alone was signalled).
      local i
      for i in $(seq 1 30); do
        kill -0 "${DEMO_PIDS[0]}" 2>/dev/null || break
        sleep 0.1
      done
      kill -TERM "${DEMO_PIDS[0]}" 2>/dev/null || true
      wait "${DEMO_PIDS[0]}" 2>/dev/null || true
    fi
    say "stopped; data kept in $DEMO_DATA (run again to reuse it)"
  }
  trap cleanup INT TERM EXIT

  say "starting batond (data in $data, log in $data/logs/batond.log)"
  "$batond" --data-dir "$data" --agents "$agents_ep" >>"$data/logs/batond.log" 2>&1 &
  DEMO_PIDS+=($!)
  for _ in $(seq 1 150); do
    "${ctl[@]}" stats >/dev/null 2>&1 && break
    kill -0 "${DEMO_PIDS[0]}" 2>/dev/null || { tail -20 "$data/logs/batond.log"; die "batond exited"; }
    sleep 0.2
  done
  "${ctl[@]}" stats >/dev/null || die "batond did not come up; see $data/logs/batond.log"

  # Two vendors, created once; their secrets are shown once, so the demo keeps
  # them (owner-only) to restart its agents next time.
  local secrets="$data/demo-secrets"
  touch "$secrets"; chmod 600 "$secrets"
  add_vendor() { # name region model caps...
    local name="$1" region="$2" model="$3"; shift 3
    if grep -q "^$name " "$secrets"; then return 0; fi
    if "${ctl[@]}" vendor show "$name" >/dev/null 2>&1; then
      die "vendor $name exists but its secret is not in $secrets"
    fi
    local args=(vendor add "$name" --region "$region" --model "$model" --capacity 4)
    for c in "$@"; do args+=(--capability "$c"); done
    local out; out="$("${ctl[@]}" --json "${args[@]}")"
    local secret; secret="$(printf '%s' "$out" | python3 -c 'import json,sys;print(json.load(sys.stdin)["secret"])')"
    echo "$name $secret" >>"$secrets"
    say "vendor $name added (region $region); its secret is kept in $secrets"
  }
  add_vendor acme-eu EU-DE nearshore upper wordcount
  add_vendor globex-in IN offshore upper

  start_agent() { # vendor name handlers...
    local vendor="$1" name="$2"; shift 2
    local secret; secret="$(awk -v v="$vendor" '$1 == v {print $2}' "$secrets")"
    local args=(--broker "$agents_ep" --vendor "$vendor" --name "$name" --slots 2)
    for h in "$@"; do args+=(--handler "$h"); done
    BATON_SECRET="$secret" "$agent" "${args[@]}" >>"$data/logs/$name.log" 2>&1 &
    DEMO_PIDS+=($!)
  }
  start_agent acme-eu acme-1 'upper=tr a-z A-Z' 'wordcount=wc -w'
  start_agent globex-in globex-1 'upper=tr a-z A-Z'

  say "submitting 20 demo packages"
  local ids=() words=(alpha bravo charlie delta echo foxtrot golf hotel india juliet)
  for i in $(seq 1 16); do
    ids+=("$("${ctl[@]}" submit --capability upper --payload "package $i: ${words[$((i % 10))]} work")")
  done
  for i in 1 2 3 4; do
    ids+=("$("${ctl[@]}" submit --capability wordcount --region EU-DE \
      --payload "one two three four $i")")
  done
  "${ctl[@]}" wait "${ids[@]}" --timeout 60s
  echo
  "${ctl[@]}" package show "${ids[0]}" | sed -n '1,12p'
  printf '\nresult of package %s: ' "${ids[0]}"; "${ctl[@]}" result "${ids[0]}"; echo
  echo
  "${ctl[@]}" vendor list
  echo
  "${ctl[@]}" agent list
  cat <<EOF

Baton is running. Try, in another terminal:
  ${ctl[*]} stats
  ${ctl[*]} submit --capability upper --payload 'hello baton'
  ${ctl[*]} submit --capability wordcount --region EU-DE --payload 'residency stays in the EU'
  ${ctl[*]} package list --limit 5
  ${ctl[*]} package show ID      # history: attempts, vendor, agent
  ${ctl[*]} result ID
  ${ctl[*]} wait --all
Logs: $data/logs/   Press Ctrl-C to stop everything (the private PostgreSQL too).
EOF
  wait "${DEMO_PIDS[0]}" || true
}

case "${1:-}" in
  run) cmd_run ;;
  test) cmd_test ;;
  deps) install_deps ;;
  *) echo "usage: deploy/dev.sh run|test" >&2; exit 2 ;;
esac
