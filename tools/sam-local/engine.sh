#!/usr/bin/env bash
# A Docker engine for `sam local`, and the base image its functions run in. Prints the DOCKER_HOST to use.
#
#   tools/sam-local/engine.sh start STATE_DIR   reuse a running engine, else start a private one (root)
#   tools/sam-local/engine.sh stop  STATE_DIR   stop the private engine, if this script started one
#
# A developer's own engine (DOCKER_HOST or the default socket) is used as it is. Otherwise, on a machine
# without one (CI, these build machines), dockerd is started on a private socket with NO bridge network,
# so no 172.17.0.0/16 interface ever exists and containers can only share the host's loopback
# (a bridge network is not available on these build machines; the functions reach the emulators there through tools/sam-local/sam_hostnet.py).
#
# SAM runs provided.al2023 functions in public.ecr.aws/lambda/provided:al2023-x86_64. When that image is
# not already there (it is never pulled: nothing leaves loopback), a stand-in with the same name is built from
# busybox (SAM's entrypoint needs /bin/sh, mv and chmod) and the glibc the bootstrap binaries link.
set -euo pipefail
cmd=${1:-}
state=${2:-}
[[ -n "$cmd" && -n "$state" ]] || { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
mkdir -p "$state"
state=$(cd "$state" && pwd)
IMAGE=public.ecr.aws/lambda/provided:al2023-x86_64
log() { echo "engine: $*" >&2; }

stop() {
  local pid
  [[ -f "$state/dockerd.pid" ]] || return 0
  pid=$(cat "$state/dockerd.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  rm -f "$state/dockerd.pid"
  # dockerd leaves its network namespace mounted under its exec-root: unmount it, or the clone's folder
  # cannot be removed ("Device or resource busy").
  local mount
  for mount in $(awk -v s="$state/" 'index($2, s) == 1 { print $2 }' /proc/mounts 2>/dev/null | sort -r); do
    umount "$mount" 2>/dev/null || umount -l "$mount" 2>/dev/null || log "could not unmount $mount"
  done
  log "private dockerd stopped"
}

usable() { docker info >/dev/null 2>&1; }

start_private() {
  export DOCKER_HOST="unix://$state/docker.sock"
  if usable; then return 0; fi
  if ! command -v dockerd >/dev/null; then
    [[ $(id -u) == 0 ]] || { log "no Docker engine answers and dockerd is not installed: install Docker"; exit 1; }
    log "installing docker.io and busybox-static from Debian (once)"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io busybox-static; } \
      >"$state/apt.log" 2>&1 || { tail -20 "$state/apt.log" >&2; exit 1; }
  fi
  [[ $(id -u) == 0 ]] || { log "starting a private dockerd needs root"; exit 1; }
  rm -f "$state/docker.sock"
  dockerd --data-root "$state/docker-root" --exec-root "$state/exec" --pidfile "$state/dockerd.pid" \
    -H "$DOCKER_HOST" --bridge=none --iptables=false --ip-masq=false --ip-forward=false \
    >"$state/dockerd.log" 2>&1 &
  for _ in $(seq 120); do usable && break; sleep 0.25; done
  usable || { tail -20 "$state/dockerd.log" >&2; log "dockerd did not answer"; exit 1; }
  log "private dockerd (no bridge network) on $DOCKER_HOST"
}

base_image() {
  docker image inspect "$IMAGE" >/dev/null 2>&1 && return 0
  local fs="$state/base-rootfs" busybox f bin
  busybox=$(command -v busybox || echo /bin/busybox)
  [[ -x "$busybox" ]] || { log "busybox is needed for the stand-in base image (Debian: busybox-static)"; exit 1; }
  rm -rf "$fs" && mkdir -p "$fs/bin" "$fs/tmp" "$fs/var/task" "$fs/var/runtime" && chmod 1777 "$fs/tmp"
  cp "$busybox" "$fs/bin/busybox"
  for a in $("$busybox" --list); do [[ -e "$fs/bin/$a" ]] || ln -s busybox "$fs/bin/$a"; done
  # The glibc the functions link (zig builds them against glibc 2.x; the host's copy runs them).
  bin=$(command -v ls)
  for f in $(ldd "$bin" | grep -o '/[^ ]*') /lib/x86_64-linux-gnu/libm.so.6 /lib/x86_64-linux-gnu/libpthread.so.0 \
           /lib/x86_64-linux-gnu/libdl.so.2 /lib/x86_64-linux-gnu/libgcc_s.so.1 /lib/x86_64-linux-gnu/librt.so.1; do
    [[ -e "$f" ]] || continue
    mkdir -p "$fs$(dirname "$f")" && cp -L "$f" "$fs$f"
  done
  tar -C "$fs" -cf - . | docker import -c 'ENV PATH=/usr/bin:/bin' - "$IMAGE" >/dev/null
  rm -rf "$fs"
  log "stand-in $IMAGE built (busybox + glibc)"
}

case "$cmd" in
  start)
    if [[ -n "${DOCKER_HOST:-}" ]] && usable; then
      log "using the engine at $DOCKER_HOST"
    elif [[ -z "${DOCKER_HOST:-}" ]] && usable; then
      log "using the default Docker engine"
    else
      start_private
    fi
    base_image
    echo "${DOCKER_HOST:-}"
    ;;
  stop) stop ;;
  *) echo "engine.sh: unknown command '$cmd'" >&2; exit 2 ;;
esac
