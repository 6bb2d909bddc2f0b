#!/usr/bin/env bash
# Builds libspead (ReleaseSafe unless -Doptimize=... is passed) and, with
# --bundle, the npm bundle in dist/ (mod.js and the tools in dist/cli/).
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
  # The library and the command-line tools (dist/cli/*.js, the package's bins), sharing chunks.
  node_modules/.bin/esbuild mod.ts cli/recv.ts cli/send.ts cli/bench.ts --bundle --splitting --format=esm \
    --platform=neutral --target=es2022 --external:bun:ffi --external:'node:*' --outbase=. --outdir=dist \
    --log-level=warning
  # Declarations for TS consumers of the bundle (esbuild does not emit them).
  node_modules/.bin/tsc -p tsconfig.build.json
fi
