#!/usr/bin/env bash
# Serve the AssetMon web app alone (settings from .env / the environment). Extra arguments go to uvicorn.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || { echo "start_web: no .venv; run ./setup_tools.sh first" >&2; exit 1; }
vars=$(.venv/bin/python -m app.settings --shell) || exit 2
eval "$vars"
.venv/bin/python -m app.db || { echo "start_web: database migration failed" >&2; exit 1; }
exec .venv/bin/uvicorn app.main:app \
  --host "$ASSETMON_HOST" --port "$ASSETMON_PORT" --log-level "$ASSETMON_LOG_LEVEL" \
  --timeout-graceful-shutdown 10 --no-server-header "$@"
