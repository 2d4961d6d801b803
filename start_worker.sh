#!/usr/bin/env bash
# Run one Celery worker alone (settings from .env / the environment).
#
#   ./start_worker.sh [--queues default,scans,secrets] [--concurrency N] [--name NAME] [--no-beat] [-- extra celery args]
#
# --queues, --concurrency and --name override WORKER_QUEUES, WORKER_CONCURRENCY and WORKER_NAME.
# --name sets the Celery node name (NAME@host), so several workers on one host do not collide.
# The worker also runs Celery beat (the scheduler tick) unless --no-beat; several beats are safe.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || { echo "start_worker: no .venv; run ./setup_tools.sh first" >&2; exit 1; }

beat=(--beat)
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --queues|-Q) export WORKER_QUEUES=${2:?--queues needs a value}; shift 2 ;;
    --concurrency|-c) export WORKER_CONCURRENCY=${2:?--concurrency needs a value}; shift 2 ;;
    --name|-n) export WORKER_NAME=${2:?--name needs a value}; shift 2 ;;
    --no-beat) beat=(); shift ;;
    --) shift; extra+=("$@"); break ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "start_worker: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done

# The options are checked with the settings themselves: one set of rules, one message.
vars=$(.venv/bin/python -m app.settings --shell) || exit 2
eval "$vars"
name=$ASSETMON_WORKER_NAME
[[ "$name" == *@* ]] || name="$name@%h"

.venv/bin/python -m app.db || { echo "start_worker: database migration failed" >&2; exit 1; }
# Workers run at a lower CPU priority so the web UI stays responsive while scans run.
exec nice -n "$ASSETMON_WORKER_NICE" .venv/bin/celery -A app.worker worker \
  --queues "$ASSETMON_WORKER_QUEUES" --concurrency "$ASSETMON_WORKER_CONCURRENCY" --hostname "$name" \
  --loglevel "$ASSETMON_LOG_LEVEL" --without-mingle --without-gossip "${beat[@]}" "${extra[@]}"
