#!/usr/bin/env bash
# Install what AssetMon needs, idempotently and without questions:
#   Debian packages used at run time (redis-server), a .venv, and the project itself.
#
#   ./setup_tools.sh                 everything
#   ./setup_tools.sh --no-system     skip apt (no root needed); only the .venv and the project
#   ./setup_tools.sh --with-test-tools   also what the test suite drives (Debian's chromium, npm)
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

SYSTEM=1
TEST_TOOLS=0
for arg in "$@"; do
  case "$arg" in
    --no-system) SYSTEM=0 ;;
    --with-test-tools) TEST_TOOLS=1 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) die "unknown option '$arg' (try --help)" ;;
  esac
done

RUNTIME_PACKAGES=(redis-server)
# The suite also runs against a real PostgreSQL server (started by the fixtures in a temp dir).
TEST_PACKAGES=(chromium postgresql)
# The secret-scanning tests fetch real JavaScript bundles with `npm pack`; any npm will do
# (a NodeSource nodejs ships its own, which Debian's npm package would conflict with).
command -v npm >/dev/null || TEST_PACKAGES+=(npm)

if [ "$SYSTEM" = 1 ]; then
  wanted=("${RUNTIME_PACKAGES[@]}")
  [ "$TEST_TOOLS" = 1 ] && wanted+=("${TEST_PACKAGES[@]}")
  missing=()
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} yourself, then rerun with --no-system"
    if [ "$(id -u)" = 0 ]; then
      SUDO=()
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      SUDO=(sudo -n)
    else
      die "installing ${missing[*]} needs root: rerun as root or with passwordless sudo, or install them yourself and use --no-system"
    fi
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq || die "apt-get update failed (network or apt sources?)"
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || die "apt-get install ${missing[*]} failed"
  else
    say "Debian packages present: ${wanted[*]}"
  fi
  # The packaged redis-server service is not ours to run: start.sh starts Redis under ./data when needed.
fi

PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11 or newer"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || die "Python 3.11 or newer is needed; $PYTHON is $("$PYTHON" -V 2>&1)"

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
  say "creating .venv with $("$PYTHON" -V 2>&1)"
  rm -rf .venv
  "$PYTHON" -m venv .venv || die "could not create .venv (on Debian: apt-get install python3-venv)"
fi

stamp=.venv/.assetmon-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c 'import app.main' 2>/dev/null; then
  say "project already installed in .venv (pyproject.toml unchanged)"
else
  say "installing the project into .venv (pip install -e .[dev])"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null || die "could not upgrade pip"
  .venv/bin/python -m pip install -q -e '.[dev]' || die "pip install failed; see the messages above"
  echo "$want" > "$stamp"
fi
# Byte-code for the project's own modules, as pip writes it for installed packages: with
# PYTHONDONTWRITEBYTECODE set (containers often set it) every command would compile them at each start.
.venv/bin/python -m compileall -q -j 0 app >/dev/null || say "could not precompile app/ (only start-up is slower)"

[ -f .env ] || say "no .env: defaults apply (copy .env.example to .env to change them)"
say "done. Start AssetMon with ./start.sh"
