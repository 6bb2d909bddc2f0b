#!/usr/bin/env bash
# The main job: installs what is missing (not spead2/numpy: tests only), builds libspead, then runs the demo
# (examples/demo.ts) under Bun and under Deno. Extra arguments go to the demo.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh --no-interop
scripts/zig build
echo "== bun examples/demo.ts $*"
node_modules/.bin/bun examples/demo.ts "$@"
echo "== deno run --allow-ffi --allow-env examples/demo.ts $*"
node_modules/.bin/deno run --allow-ffi --allow-env examples/demo.ts "$@"
