#!/usr/bin/env bash
# AssetMon, one command: set up what is missing, start Redis and a Celery worker when it can,
# serve the web UI, supervise all of it, and stop all of it cleanly on Ctrl+C.
set -uo pipefail
cd "$(dirname "$0")"

log() { printf '%s [start] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '%s [start] error: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  log "no .venv yet: running ./setup_tools.sh"
  ./setup_tools.sh || die "setup failed; fix the problem above and run ./start.sh again"
fi
vars=$(.venv/bin/python -m app.settings --shell) || die "invalid settings (see above); check .env"
eval "$vars"
DATA_DIR=$ASSETMON_DATA_DIR
LOG_DIR=$DATA_DIR/logs
mkdir -p "$LOG_DIR" "$DATA_DIR/redis" || die "cannot create $DATA_DIR"

log "preparing the database"
.venv/bin/assetmon db upgrade >/dev/null || die "database migration failed"

WEB_PID=""
WORKER_PID=""
REDIS_PID=""
STOPPING=0
worker_backoff=1
worker_next_start=0
worker_started_at=0
last_redis_probe=0

redis_answers() {
  .venv/bin/python -c 'import sys; from app.broker import ping_redis; sys.exit(0 if ping_redis() else 1)' 2>/dev/null
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# Stop a process group started with setsid: SIGTERM, wait, then SIGKILL.
stop_group() {
  local pid=$1 name=$2 grace=$3 waited=0
  alive "$pid" || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  while alive "$pid" && [ "$waited" -lt $((grace * 10)) ]; do sleep 0.1; waited=$((waited + 1)); done
  if alive "$pid"; then
    log "$name did not stop within ${grace}s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  # Anything left in its process group (e.g. pool children) goes too.
  kill -KILL -- "-$pid" 2>/dev/null
  return 0
}

start_redis() {
  command -v redis-server >/dev/null || return 1
  log "starting Redis on 127.0.0.1:$ASSETMON_REDIS_PORT (data in $DATA_DIR/redis)"
  setsid redis-server --bind 127.0.0.1 --port "$ASSETMON_REDIS_PORT" --dir "$DATA_DIR/redis" \
    --appendonly yes --save "" --protected-mode yes --daemonize no \
    --logfile "$LOG_DIR/redis.log" </dev/null &
  REDIS_PID=$!
  for _ in $(seq 1 50); do
    redis_answers && return 0
    alive "$REDIS_PID" || break
    sleep 0.1
  done
  log "Redis did not come up (see $LOG_DIR/redis.log)"
  stop_group "$REDIS_PID" redis 5
  REDIS_PID=""
  return 1
}

start_worker() {
  log "starting the Celery worker (log: $LOG_DIR/worker.log)"
  setsid ./start_worker.sh </dev/null >>"$LOG_DIR/worker.log" 2>&1 &
  WORKER_PID=$!
  worker_started_at=$SECONDS
}

start_web() {
  setsid ./start_web.sh </dev/null &
  WEB_PID=$!
}

shutdown() {
  local code=${1:-0}
  if [ "$STOPPING" = 1 ]; then
    # A second Ctrl+C: stop now.
    log "forced stop"
    for pid in "$WORKER_PID" "$WEB_PID" "$REDIS_PID"; do
      [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null
    done
    exit 130
  fi
  STOPPING=1
  log "stopping AssetMon (Ctrl+C again to force)"
  # The worker gets a warm shutdown: running jobs finish if they can within the timeout.
  alive "$WORKER_PID" && kill -TERM -- "-$WORKER_PID" 2>/dev/null
  alive "$WEB_PID" && kill -TERM -- "-$WEB_PID" 2>/dev/null
  stop_group "$WORKER_PID" worker "$ASSETMON_WORKER_SHUTDOWN_TIMEOUT"
  stop_group "$WEB_PID" "web server" 15
  if [ -n "$REDIS_PID" ]; then
    stop_group "$REDIS_PID" redis 10
  fi
  log "stopped"
  exit "$code"
}
trap 'shutdown 0' INT TERM
trap 'shutdown 1' HUP

# Redis: use the one at REDIS_URL; start a local one only when that is safe and wanted.
redis_note=""
if redis_answers; then
  redis_note="Redis at $ASSETMON_REDIS_URL_REDACTED (already running)"
elif [ "$ASSETMON_REDIS_IS_LOCAL" != 1 ]; then
  redis_note="Redis at $ASSETMON_REDIS_URL_REDACTED is not reachable and is not on this machine"
elif [ "$ASSETMON_START_REDIS" != 1 ]; then
  redis_note="Redis at $ASSETMON_REDIS_URL_REDACTED is not reachable and START_REDIS=0"
elif ! command -v redis-server >/dev/null; then
  redis_note="Redis at $ASSETMON_REDIS_URL_REDACTED is not reachable and redis-server is not installed (./setup_tools.sh installs it)"
elif start_redis; then
  redis_note="Redis at $ASSETMON_REDIS_URL_REDACTED (started by start.sh)"
else
  redis_note="Redis at $ASSETMON_REDIS_URL_REDACTED could not be started (see $LOG_DIR/redis.log)"
fi

start_web
if redis_answers; then
  start_worker
fi

# Wait for the web server, then say where it is and how jobs run.
health=""
for _ in $(seq 1 300); do
  alive "$WEB_PID" || break
  health=$(.venv/bin/python - "$ASSETMON_PORT" "$WORKER_PID" <<'EOF' 2>/dev/null
import json, sys, time
import httpx
port, worker = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + (15 if worker else 0)
while True:
    body = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
    if body["mode"] == "celery" or time.monotonic() > deadline:
        break
    time.sleep(0.5)
print(json.dumps(body))
EOF
) && break
  sleep 0.2
done
if ! alive "$WEB_PID"; then
  log "the web server did not start (is port $ASSETMON_PORT in use?)"
  shutdown 1
fi

mode=$(printf '%s' "$health" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["mode"])' 2>/dev/null || echo unknown)
reason=$(printf '%s' "$health" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin).get("reason",""))' 2>/dev/null)
shown_host=$ASSETMON_HOST
[ "$shown_host" = "0.0.0.0" ] && shown_host=localhost
cat <<EOF

  ────────────────────────────────────────────────────────────
  AssetMon is running
    URL    http://$ASSETMON_HOST:$ASSETMON_PORT   (open http://$shown_host:$ASSETMON_PORT)
    Mode   $mode${reason:+
           $reason}
    Redis  $redis_note
    Data   $DATA_DIR   (logs in $LOG_DIR)
    Stop   Ctrl+C
  ────────────────────────────────────────────────────────────

EOF

# Supervise: the web server is essential; the worker is restarted with backoff; a Redis that we
# started is restarted if it dies; a worker is started later if Redis becomes reachable.
while true; do
  sleep 1 &
  wait $! 2>/dev/null
  if ! alive "$WEB_PID"; then
    wait "$WEB_PID" 2>/dev/null
    log "the web server exited unexpectedly (code $?); stopping everything"
    shutdown 1
  fi
  if [ -n "$REDIS_PID" ] && ! alive "$REDIS_PID"; then
    log "Redis (started by start.sh) exited; restarting it"
    REDIS_PID=""
    start_redis || log "Redis could not be restarted; jobs fall back to the web process"
  fi
  if [ -n "$WORKER_PID" ]; then
    if ! alive "$WORKER_PID"; then
      wait "$WORKER_PID" 2>/dev/null
      code=$?
      log "the worker exited (code $code); restarting it in ${worker_backoff}s (log: $LOG_DIR/worker.log)"
      WORKER_PID=""
      worker_next_start=$((SECONDS + worker_backoff))
      worker_backoff=$((worker_backoff * 2 > 60 ? 60 : worker_backoff * 2))
    elif [ $((SECONDS - worker_started_at)) -gt 60 ]; then
      worker_backoff=1
    fi
  elif [ "$SECONDS" -ge "$worker_next_start" ] && [ $((SECONDS - last_redis_probe)) -ge 3 ]; then
    last_redis_probe=$SECONDS
    if redis_answers; then
      start_worker
    fi
  fi
done
