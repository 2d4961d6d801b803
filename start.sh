#!/usr/bin/env bash
# AssetMon, one command: set up what is missing, start Redis and a Celery worker when it can,
# serve the web UI, supervise all of it, and stop all of it cleanly on Ctrl+C.
#
#   ./start.sh [--flower]
#
# --flower also runs Flower, the Celery monitoring UI, on http://127.0.0.1:${FLOWER_PORT:-5555}, supervised
# like the worker (it needs Redis, and `.venv/bin/pip install -e '.[flower]'`).
set -uo pipefail
cd "$(dirname "$0")"

WITH_FLOWER=0
while [ $# -gt 0 ]; do
  case "$1" in
    --flower) WITH_FLOWER=1; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) printf 'start: unknown option %s (try --help)\n' "'$1'" >&2; exit 2 ;;
  esac
done
FLOWER_PORT=${FLOWER_PORT:-5555}
if [ "$WITH_FLOWER" = 1 ] && ! { [[ "$FLOWER_PORT" =~ ^[1-9][0-9]{0,4}$ ]] && [ "$FLOWER_PORT" -le 65535 ]; }; then
  echo "start: FLOWER_PORT must be a port number (1-65535), not '$FLOWER_PORT'" >&2
  exit 2
fi

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
.venv/bin/python -m app.db || die "database migration failed"

flower_note=""
if [ "$WITH_FLOWER" = 1 ] && ! .venv/bin/python -c "import flower" 2>/dev/null; then
  log "Flower is not installed; install it with: .venv/bin/pip install -e '.[flower]' (continuing without it)"
  flower_note="not installed: .venv/bin/pip install -e '.[flower]'"
  WITH_FLOWER=0
fi

WEB_PID=""
WORKER_PID=""
REDIS_PID=""
FLOWER_PID=""
STOPPING=0
worker_backoff=1
worker_next_start=0
worker_started_at=0
last_redis_probe=0
flower_backoff=1
flower_next_start=0
flower_started_at=0
flower_last_probe=0

redis_answers() {
  .venv/bin/python -c 'import sys; from app.jobs.broker import ping_redis; sys.exit(0 if ping_redis() else 1)' 2>/dev/null
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

start_flower() {
  log "starting Flower on http://127.0.0.1:$FLOWER_PORT (log: $LOG_DIR/flower.log)"
  setsid .venv/bin/celery -A app.worker flower --address=127.0.0.1 --port="$FLOWER_PORT" \
    </dev/null >>"$LOG_DIR/flower.log" 2>&1 &
  FLOWER_PID=$!
  flower_started_at=$SECONDS
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
    for pid in "$WORKER_PID" "$FLOWER_PID" "$WEB_PID" "$REDIS_PID"; do
      [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null
    done
    exit 130
  fi
  STOPPING=1
  log "stopping AssetMon (Ctrl+C again to force)"
  # The worker gets a warm shutdown: running jobs finish if they can within the timeout.
  alive "$WORKER_PID" && kill -TERM -- "-$WORKER_PID" 2>/dev/null
  alive "$WEB_PID" && kill -TERM -- "-$WEB_PID" 2>/dev/null
  alive "$FLOWER_PID" && kill -TERM -- "-$FLOWER_PID" 2>/dev/null
  stop_group "$WORKER_PID" worker "$ASSETMON_WORKER_SHUTDOWN_TIMEOUT"
  stop_group "$FLOWER_PID" Flower 5
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
  [ "$WITH_FLOWER" = 1 ] && start_flower
fi
if [ "$WITH_FLOWER" = 1 ]; then
  flower_note="http://127.0.0.1:$FLOWER_PORT   (log: $LOG_DIR/flower.log)"
  [ -n "$FLOWER_PID" ] || flower_note="http://127.0.0.1:$FLOWER_PORT, once Redis answers"
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
setup_note=""
if [ -s "$DATA_DIR/setup-code" ]; then
  setup_note="no accounts yet: open http://$shown_host:$ASSETMON_PORT/setup to create the admin
           (from another machine it asks for the setup code $(cat "$DATA_DIR/setup-code"))"
fi
cat <<EOF

  ────────────────────────────────────────────────────────────
  AssetMon is running
    URL    http://$ASSETMON_HOST:$ASSETMON_PORT   (open http://$shown_host:$ASSETMON_PORT)
    Mode   $mode${reason:+
           $reason}
    Redis  $redis_note${flower_note:+
    Flower $flower_note}
    Data   $DATA_DIR   (logs in $LOG_DIR)${setup_note:+
    Setup  $setup_note}
    Stop   Ctrl+C
  ────────────────────────────────────────────────────────────

EOF

# Supervise: the web server is essential; the worker (and Flower) is restarted with backoff; a Redis
# that we started is restarted if it dies; a worker (and Flower) is started later if Redis becomes reachable.
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
      # What it left in its process group (an embedded beat, pool children) goes too.
      kill -KILL -- "-$WORKER_PID" 2>/dev/null
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
  if [ "$WITH_FLOWER" = 1 ]; then
    if [ -n "$FLOWER_PID" ]; then
      if ! alive "$FLOWER_PID"; then
        wait "$FLOWER_PID" 2>/dev/null
        code=$?
        kill -KILL -- "-$FLOWER_PID" 2>/dev/null
        log "Flower exited (code $code); restarting it in ${flower_backoff}s (log: $LOG_DIR/flower.log)"
        FLOWER_PID=""
        flower_next_start=$((SECONDS + flower_backoff))
        flower_backoff=$((flower_backoff * 2 > 60 ? 60 : flower_backoff * 2))
      elif [ $((SECONDS - flower_started_at)) -gt 60 ]; then
        flower_backoff=1
      fi
    elif [ "$SECONDS" -ge "$flower_next_start" ] && [ $((SECONDS - flower_last_probe)) -ge 3 ]; then
      flower_last_probe=$SECONDS
      if redis_answers; then
        start_flower
      fi
    fi
  fi
done
