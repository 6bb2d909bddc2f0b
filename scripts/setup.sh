#!/usr/bin/env bash
# Installs what is missing, and nothing else: the pinned Zig (PyPI `ziglang`
# into .venv, unless a `zig` of that version is on PATH), Bun/Deno/esbuild/
# TypeScript from npm (package-lock.json), spead2 + numpy into .venv for the
# interop tests (not with --no-interop: the demo does not need them).
# Idempotent; a second run takes about a second.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
zig_version="$(tr -d ' \r\n' < .zig-version)"
say() { printf 'setup: %s\n' "$*" >&2; }

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi

if command -v zig >/dev/null 2>&1 && [ "$(zig version 2>/dev/null)" = "$zig_version" ]; then
  :
elif [ "$(.venv/bin/python -m ziglang version 2>/dev/null || true)" != "$zig_version" ]; then
  say "installing ziglang==$zig_version from PyPI"
  .venv/bin/python -m pip install -q --disable-pip-version-check "ziglang==$zig_version"
fi

interop=1
[ "${1:-}" = "--no-interop" ] && interop=0
py_stamp=".venv/.interop-$(cksum < requirements-interop.txt | cut -d' ' -f1)"
if [ "$interop" = 1 ] && [ ! -e "$py_stamp" ]; then
  say "installing spead2 and numpy (interop tests only)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-interop.txt
  touch "$py_stamp"
fi

npm_stamp="node_modules/.spead-$(cksum < package-lock.json | cut -d' ' -f1)"
if [ ! -e "$npm_stamp" ] || [ ! -x node_modules/.bin/bun ] || [ ! -x node_modules/.bin/deno ]; then
  say "installing bun, deno, esbuild, typescript from npm"
  # `npm ci` is exact, but refuses to run when a registry mirror lacks another
  # platform's optional binary package (seen with @deno/darwin-*); `npm install
  # --no-save` then installs the same locked versions without touching the lock.
  npm ci --no-audit --no-fund --loglevel=error 2>/dev/null ||
    npm install --no-audit --no-fund --no-save --loglevel=error
  touch "$npm_stamp"
fi
