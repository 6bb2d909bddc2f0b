#!/usr/bin/env bash
# Builds libspead (ReleaseSafe unless -Doptimize=... is passed) and, with
# --bundle, the npm bundle in dist/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bundle=0
args=()
for a in "$@"; do
  if [ "$a" = "--bundle" ]; then bundle=1; else args+=("$a"); fi
done
scripts/zig build "${args[@]}"
if [ "$bundle" = 1 ]; then
  node_modules/.bin/esbuild mod.ts --bundle --splitting --format=esm --platform=neutral --target=es2022 \
    --external:bun:ffi --external:'node:*' --outdir=dist --log-level=warning
  # Declarations for TS consumers of the bundle (esbuild does not emit them).
  node_modules/.bin/tsc -p tsconfig.build.json
fi
