#!/usr/bin/env bash
# Start REPLICAS `responder serve` processes on ports BASE_PORT+1 ... sharing one Redis, each
# with WORKERS worker processes (`responder serve --workers`: one per core of its machine).
#   RESPONDER_STORE=redis://127.0.0.1:6379/0 RESPONDER_PUBLIC_URL=https://your.host \
#     WORKERS=2 examples/deploy/run-replicas.sh rules/
# Ctrl-C (or SIGTERM) stops them all; each finishes its webhooks and calls in flight first.
set -euo pipefail

rules="${1:-rules}"
replicas="${REPLICAS:-3}"
base_port="${BASE_PORT:-8080}"
workers="${WORKERS:-1}"
export RESPONDER_STORE="${RESPONDER_STORE:-redis://127.0.0.1:6379/0}"
# nginx on this host is the only proxy whose X-Forwarded-For is believed.
export RESPONDER_TRUSTED_PROXIES="${RESPONDER_TRUSTED_PROXIES:-127.0.0.1}"
python="${PYTHON:-python3}"

case "$RESPONDER_STORE" in
    redis://* | rediss://*) ;;
    *) echo "RESPONDER_STORE must be a redis:// URL shared by every replica" >&2; exit 2 ;;
esac

# Refuse rules that do not load before starting anything.
"$python" -m responder check "$rules"

pids=()
stop() {
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT INT TERM

for n in $(seq 1 "$replicas"); do
    port=$((base_port + n))
    "$python" -m responder serve --rules "$rules" --host 127.0.0.1 --port "$port" \
        --workers "$workers" &
    pids+=("$!")
    echo "replica $n: http://127.0.0.1:$port (pid $!)"
done
# A worker that dies is replaced by its replica. A replica that dies leaves the others
# serving (nginx routes around it); restart it by hand or, in production, run each replica
# under a supervisor (systemd with KillMode=mixed, a container runtime).
wait
