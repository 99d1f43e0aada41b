#!/bin/bash
# kvorum-entrypoint.sh: the container's entry point. Computes kvorumd's
# identity, address and seed flags from the environment (the Kubernetes
# downward API, or plain `docker run`), then execs kvorumd with them,
# followed by the container's own arguments (which win: kvorumd takes the
# last of a repeated flag). kvorumd becomes the container's process 1 and
# gets SIGTERM itself, so it stops cleanly.
#
# Why a wrapper (docs/deploy.md, "What the manifests expect of kvorumd"):
# kvorumd binds the very address it advertises (--listen, --peer) and
# parses it as a literal IPv4 or [IPv6] address, and it dials seeds the
# same way, so neither a DNS name nor 0.0.0.0 can be given. The wrapper
# resolves the peers' stable DNS names to addresses at start and uses the
# pod's own IP for --listen and --peer.
#
# Usage:
#   kvorum-entrypoint.sh [KVORUMD FLAGS...]  start the node
#   kvorum-entrypoint.sh health              exit 0 when GET /health is 200
#   kvorum-entrypoint.sh PROGRAM [ARGS...]   run PROGRAM (e.g. kvorum, bash)
#
# Environment (all optional; defaults in brackets):
#   POD_NAME             node id [$(hostname)]; NAME-ORDINAL in a StatefulSet
#   POD_IP               address to bind and advertise for clients and peers
#                        [first address of `hostname -i`]
#   POD_NAMESPACE        namespace, for the seeds' DNS names [none: the
#                        resolver's search path completes them]
#   KVORUM_SERVICE       the headless Service [the StatefulSet's name]
#   KVORUM_CLUSTER_DOMAIN                     [cluster.local]
#   KVORUM_SEEDS         comma-separated seeds: a pod name (then
#                        POD.SERVICE.NAMESPACE.svc.DOMAIN:PEER_PORT) or
#                        HOST:PORT [in Kubernetes, the StatefulSet's pods
#                        0, 1 and 2; elsewhere none]
#   KVORUM_BOOTSTRAP     the one pod that may create a new cluster when no
#                        seed resolves [the StatefulSet's pod 0]
#   KVORUM_SEED_WAIT_S   how long to wait for a reachable seed [120]
#   KVORUM_CLIENT_PORT, KVORUM_PEER_PORT, KVORUM_RESP_PORT, KVORUM_HTTP_PORT
#                        [7101, 7201, 7301, 7401]; KVORUM_RESP_PORT=off
#                        turns the Redis protocol off
#   KVORUM_SERVE_HOST    address for the Redis and HTTP ports [0.0.0.0]
#   KVORUM_DATA          data directory [/var/lib/kvorum/data]
#   KVORUMD              the kvorumd to run [kvorumd on the PATH]
#   KVORUM_DRY_RUN=1     print kvorumd's arguments, one a line, and exit
set -euo pipefail

log() { echo "kvorum-entrypoint: $*" >&2; }

client_port=${KVORUM_CLIENT_PORT:-7101}
peer_port=${KVORUM_PEER_PORT:-7201}
resp_port=${KVORUM_RESP_PORT:-7301}
http_port=${KVORUM_HTTP_PORT:-7401}
serve_host=${KVORUM_SERVE_HOST:-0.0.0.0}

# Writes HOST:PORT, with IPv6 addresses in brackets as kvorumd wants them.
hostport() {
  case $1 in
    *:*) printf '[%s]:%s\n' "$1" "$2" ;;
    *) printf '%s:%s\n' "$1" "$2" ;;
  esac
}

# Exit status 0 when a TCP connection to $1 port $2 opens within 2 s.
tcp_open() {
  # shellcheck disable=SC2016 # $0 and $1 are the inner shell's
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# health: GET /health on this container's HTTP port, for Docker's
# HEALTHCHECK (Kubernetes probes call the endpoint directly).
health() {
  local host=$serve_host
  [ "$host" = 0.0.0.0 ] && host=127.0.0.1
  local status
  { exec 3<>"/dev/tcp/$host/$http_port"; } 2>/dev/null || return 1
  printf 'GET /health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' \
    "$host" >&3
  IFS= read -r -t 5 status <&3 || return 1
  exec 3<&-
  case $status in
    "HTTP/1."?" 200 "*) return 0 ;;
    *) return 1 ;;
  esac
}

# The first address NAME resolves to (IPv4 first), or nothing.
resolve() {
  case $1 in
    *[!0-9.]*) ;;
    *) echo "$1"; return ;; # already an IPv4 address
  esac
  case $1 in
    \[*\]) echo "${1:1:${#1}-2}"; return ;;
  esac
  local a
  a=$(getent ahostsv4 "$1" 2>/dev/null | awk 'NR == 1 { print $1 }') || true
  [ -n "$a" ] || a=$(getent ahosts "$1" 2>/dev/null | awk 'NR == 1 { print $1 }') || true
  echo "$a"
}

case ${1:-} in
  health) health; exit ;;
  -*|"") ;;
  *) exec "$@" ;;
esac

id=${POD_NAME:-$(hostname)}
ip=${POD_IP:-$(hostname -i 2>/dev/null | awk '{ print $1 }' || true)}
if [ -z "$ip" ]; then
  log "no address to bind: set POD_IP"
  exit 2
fi
data=${KVORUM_DATA:-/var/lib/kvorum/data}
# A StatefulSet's pod is SET-ORDINAL.
set_name="" ordinal=""
if [[ $id =~ ^(.+)-([0-9]+)$ ]]; then
  set_name=${BASH_REMATCH[1]}
  ordinal=${BASH_REMATCH[2]}
fi
service=${KVORUM_SERVICE:-$set_name}
domain=${KVORUM_CLUSTER_DOMAIN:-cluster.local}
bootstrap=${KVORUM_BOOTSTRAP:-${set_name:+$set_name-0}}
if [ -z "${KVORUM_SEEDS+x}" ] && [ -n "$ordinal" ] &&
   [ -n "${KUBERNETES_SERVICE_HOST:-}" ]; then
  KVORUM_SEEDS="$set_name-0,$set_name-1,$set_name-2"
fi

# Seeds: each entry to an address kvorumd can dial; this pod and names
# that do not resolve (pods not created yet) are left out.
seeds=() named=0
# Split on commas (a pipe, not a here-string: the root file system may be
# read-only).
IFS=, read -r -a entries < <(printf '%s\n' "${KVORUM_SEEDS:-}")
seed_addrs() {
  seeds=() named=0
  local e host port a
  for e in "${entries[@]}"; do
    if [ -z "$e" ] || [ "$e" = "$id" ]; then continue; fi
    case $e in
      *:*) host=${e%:*} port=${e##*:} ;;
      *)
        host=$e${service:+.$service}
        [ -n "${POD_NAMESPACE:-}" ] && host=$host.$POD_NAMESPACE.svc.$domain
        port=$peer_port ;;
    esac
    a=$(resolve "$host")
    if [ -z "$a" ] || [ "$a" = "$ip" ]; then continue; fi
    named=$((named + 1))
    seeds+=("$(hostport "$a" "$port")")
  done
}

# True when one of the seeds accepts a TCP connection.
seed_reachable() {
  local s h
  for s in "${seeds[@]}"; do
    h=${s%:*} h=${h#[} h=${h%]}
    tcp_open "$h" "${s##*:}" && return 0
  done
  return 1
}

# A node with seeds that hears from none of them creates a cluster of its
# own, which never merges with the real one. So: wait until a seed
# answers. Only the bootstrap pod may start without one: at once when no
# seed even resolves (the first start of the cluster, or a restart before
# the other pods exist), and after the wait when it has data (its saved
# ring keeps it in the cluster, and the others find it, their seed).
seed_addrs
if [ "${KVORUM_DRY_RUN:-0}" != 1 ] && [ "${#entries[@]}" -gt 0 ]; then
  deadline=$((SECONDS + ${KVORUM_SEED_WAIT_S:-120}))
  while ! { [ "$named" -gt 0 ] && seed_reachable; }; do
    if [ "$id" = "$bootstrap" ] && [ "$named" -eq 0 ]; then
      log "no seed resolves: $id starts the cluster, or rejoins from $data"
      break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      if [ "$id" = "$bootstrap" ] && [ -n "$(ls -A "$data" 2>/dev/null)" ]; then
        log "no seed answers: $id starts from the ring saved in $data"
        break
      fi
      log "no seed of '$KVORUM_SEEDS' answers after" \
          "${KVORUM_SEED_WAIT_S:-120} s: not starting a cluster of its own"
      exit 1
    fi
    sleep 1
    seed_addrs
  done
fi

args=(--id "$id" --listen "$(hostport "$ip" "$client_port")"
      --peer "$(hostport "$ip" "$peer_port")" --data "$data"
      --http "$(hostport "$serve_host" "$http_port")")
[ "$resp_port" = off ] || args+=(--resp "$(hostport "$serve_host" "$resp_port")")
if [ "${#seeds[@]}" -gt 0 ]; then
  args+=(--seeds "$(IFS=,; echo "${seeds[*]}")")
fi
args+=("$@")
if [ "${KVORUM_DRY_RUN:-0}" = 1 ]; then
  printf '%s\n' "${args[@]}"
  exit 0
fi
log "exec ${KVORUMD:-kvorumd} ${args[*]}"
exec "${KVORUMD:-kvorumd}" "${args[@]}"
