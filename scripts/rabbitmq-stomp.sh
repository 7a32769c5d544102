#!/usr/bin/env bash
# Enable RabbitMQ's STOMP and Web-STOMP plugins on the local node and wait
# until their listeners accept TCP connections.
#
# Idempotent: safe to run again when the node is up and the plugins are
# already enabled (takes ~4 s then, mostly CLI start-up).
#
#   - node running     -> `rabbitmq-plugins enable` (online: the running node
#                         starts the plugins itself, no restart needed)
#   - node not running -> `rabbitmq-plugins enable --offline` (only writes the
#                         enabled_plugins file), then `rabbitmq-server -detached`
#                         (the node boots with the plugins)
#   then waits until 127.0.0.1:$STOMP_PORT and 127.0.0.1:$WEB_STOMP_PORT accept
#   TCP connections, bounded by $RABBITMQ_STOMP_TIMEOUT seconds overall.
#
# Exit codes: 0 ready; 2 RabbitMQ CLI tools missing; 3 node did not come up;
#             4 enabling the plugins failed; 5 ports not open in time.
#
# Environment (all optional):
#   RABBITMQ_STOMP_TIMEOUT   overall deadline in seconds (default 60)
#   RABBITMQ_STOMP_PORT      STOMP TCP port to wait for (default 61613)
#   RABBITMQ_WEB_STOMP_PORT  Web-STOMP port to wait for (default 15674)
#   RABBITMQ_STOMP_HOST      address to probe (default 127.0.0.1)
# The usual RABBITMQ_* variables (RABBITMQ_NODENAME, ...) are honoured by the
# RabbitMQ CLI tools themselves.
#
# Needs root (or the rabbitmq user): the Debian wrappers refuse other users.

set -uo pipefail

TIMEOUT="${RABBITMQ_STOMP_TIMEOUT:-60}"
STOMP_PORT="${RABBITMQ_STOMP_PORT:-61613}"
WEB_STOMP_PORT="${RABBITMQ_WEB_STOMP_PORT:-15674}"
HOST="${RABBITMQ_STOMP_HOST:-127.0.0.1}"
PLUGINS=(rabbitmq_stomp rabbitmq_web_stomp)

PATH="$PATH:/usr/sbin:/usr/lib/rabbitmq/bin:/usr/local/sbin"
export PATH

log() { printf '[rabbitmq-stomp] %s\n' "$*"; }
die() {
  local code="$1"
  shift
  printf '[rabbitmq-stomp] ERROR: %s\n' "$*" >&2
  exit "$code"
}

START=$SECONDS
DEADLINE=$((SECONDS + TIMEOUT))
remaining() { echo $((DEADLINE - SECONDS)); }
elapsed() { echo $((SECONDS - START)); }

for tool in rabbitmq-plugins rabbitmq-server rabbitmq-diagnostics; do
  command -v "$tool" >/dev/null 2>&1 ||
    die 2 "'$tool' not found: RabbitMQ is not installed (Debian: apt-get install -y rabbitmq-server)"
done

# Print what might explain a failure (stderr, best effort, bounded).
diagnose() {
  {
    echo "---- rabbitmq-diagnostics listeners ----"
    timeout 20 rabbitmq-diagnostics -q listeners 2>&1 | head -20
    local f
    local logs="${RABBITMQ_LOG_BASE:-/var/log/rabbitmq}"
    for f in "$logs"/startup_err "$logs"/startup_log "$logs"/*@*.log; do
      [ -s "$f" ] || continue
      echo "---- tail $f ----"
      tail -n 15 "$f"
    done
  } >&2
}

node_up() { timeout 20 rabbitmq-diagnostics -q ping >/dev/null 2>&1; }

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" >/dev/null 2>&1; }

# 1. Make sure the node runs (and boots with the plugins if we start it).
if node_up; then
  log "RabbitMQ node is running"
else
  log "RabbitMQ node is not running: enabling plugins offline and starting it"
  out=$(rabbitmq-plugins enable --offline "${PLUGINS[@]}" 2>&1) || {
    printf '%s\n' "$out" >&2
    die 4 "rabbitmq-plugins enable --offline failed"
  }
  # Fails harmlessly if a node is already booting under the same name.
  rabbitmq-server -detached >/dev/null 2>&1 || log "rabbitmq-server -detached exited non-zero (node may already be starting)"
  until node_up; do
    if [ "$(remaining)" -le 0 ]; then
      diagnose
      die 3 "RabbitMQ node did not answer ping within ${TIMEOUT}s"
    fi
    sleep 1
  done
  log "RabbitMQ node is up after $(elapsed)s"
fi

# 2. Online enable: starts the plugins on the running node; a no-op
#    ("Plugin configuration unchanged") when they already run.
out=$(timeout "$(($(remaining) > 10 ? $(remaining) : 10))" \
  rabbitmq-plugins enable "${PLUGINS[@]}" 2>&1) || {
  printf '%s\n' "$out" >&2
  diagnose
  die 4 "rabbitmq-plugins enable ${PLUGINS[*]} failed"
}
case "$out" in
*"unchanged"*) log "plugins already enabled" ;;
*) log "plugins enabled" ;;
esac

# 3. Wait until both listeners accept TCP connections.
for port in "$STOMP_PORT" "$WEB_STOMP_PORT"; do
  until port_open "$HOST" "$port"; do
    if [ "$(remaining)" -le 0 ]; then
      diagnose
      die 5 "$HOST:$port does not accept connections after ${TIMEOUT}s"
    fi
    sleep 0.5
  done
done

log "ready after $(elapsed)s: STOMP $HOST:$STOMP_PORT, Web-STOMP ws://$HOST:$WEB_STOMP_PORT/ws"
exit 0
