#!/usr/bin/env bash
# Run one Celery worker alone (settings from .env / the environment).
#
#   ./start_worker.sh [--queues default,scans,secrets] [--concurrency N] [--name NAME] [--no-beat] [-- extra celery args]
#
# --name sets the Celery node name (NAME@host), so several workers on one host do not collide.
# The worker also runs Celery beat (the scheduler tick) unless --no-beat; several beats are safe.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || { echo "start_worker: no .venv; run ./setup_tools.sh first" >&2; exit 1; }
vars=$(.venv/bin/python -m app.settings --shell) || exit 2
eval "$vars"

queues=$ASSETMON_WORKER_QUEUES
concurrency=$ASSETMON_WORKER_CONCURRENCY
name=assetmon
beat=(--beat)
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --queues|-Q) queues=${2:?--queues needs a value}; shift 2 ;;
    --concurrency|-c) concurrency=${2:?--concurrency needs a value}; shift 2 ;;
    --name|-n) name=${2:?--name needs a value}; shift 2 ;;
    --no-beat) beat=(); shift ;;
    --) shift; extra+=("$@"); break ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "start_worker: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[[ "$concurrency" =~ ^[1-9][0-9]*$ ]] || { echo "start_worker: --concurrency must be a positive number" >&2; exit 2; }
[[ "$queues" =~ ^[a-z,]+$ ]] || { echo "start_worker: --queues is a comma-separated list such as default,scans" >&2; exit 2; }
[[ "$name" == *@* ]] || name="$name@%h"

.venv/bin/assetmon db upgrade >/dev/null || { echo "start_worker: database migration failed" >&2; exit 1; }
# Workers run at a lower CPU priority so the web UI stays responsive while scans run.
exec nice -n "$ASSETMON_WORKER_NICE" .venv/bin/celery -A app.celery_app worker \
  --queues "$queues" --concurrency "$concurrency" --hostname "$name" \
  --loglevel "$ASSETMON_LOG_LEVEL" --without-mingle --without-gossip "${beat[@]}" "${extra[@]}"
