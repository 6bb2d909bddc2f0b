#!/usr/bin/env bash
# The packaging test (scripts/test.sh runs it once per test run): builds every
# package with scripts/pack.sh, installs the tarballs into a temporary Bun app
# and a temporary Deno app outside the checkout, with no Zig on PATH and no
# path into the checkout, and runs a loopback send + receive in each; then
# `tsc --noEmit` in a strict app against the installed types, and the bins.
# `deno publish --dry-run` of the JSR package runs inside pack.sh.
# Prints `packaging: N passed, N failed`; exits non-zero on any failure.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
passed=0
failed=0
ok() { echo "packaging ok: $*"; passed=$((passed + 1)); }
bad() { echo "packaging FAILED: $*"; failed=$((failed + 1)); }
finish() { echo "packaging: $passed passed, $failed failed"; [ "$failed" = 0 ]; exit; }

if timeout 600 bash scripts/pack.sh; then ok "scripts/pack.sh (tarballs, ELF checks, deno publish --dry-run)"; else bad "scripts/pack.sh"; finish; fi
version="$(node_modules/.bin/bun -e 'console.log(require("./package.json").version)')"
pkg="$root/dist/pkg"

work="$(mktemp -d /tmp/spead-packaging-XXXXXX)"
trap 'rm -rf "$work"' EXIT
# Tools only: the runtimes, npm and tsc, each by its own path; no zig, no checkout.
mkdir -p "$work/bin"
for tool in bun deno tsc; do ln -s "$(readlink -f "$root/node_modules/.bin/$tool")" "$work/bin/$tool"; done
for tool in node npm; do
  p="$(command -v "$tool")" && ln -s "$p" "$work/bin/$tool"
done
clean_env=(env -i "PATH=$work/bin:/usr/bin:/bin" "HOME=$work/home" "TMPDIR=${TMPDIR:-/tmp}")
mkdir -p "$work/home"
if "${clean_env[@]}" bash -c 'command -v zig' >/dev/null; then bad "zig is on the clean PATH"; fi

app_package() { # dir -> package.json installing the tarballs
  cat >"$1/package.json" <<JSON
{
  "name": "spead-packaging-app",
  "private": true,
  "type": "module",
  "dependencies": { "spead": "file:$pkg/spead-$version.tgz" },
  "overrides": {
    "@spead/linux-x64-gnu": "file:$pkg/spead-linux-x64-gnu-$version.tgz",
    "@spead/linux-arm64-gnu": "file:$pkg/spead-linux-arm64-gnu-$version.tgz"
  }
}
JSON
  cp "$root/tests/packaging/app.ts" "$1/app.ts"
}

# Bun app: bun install, then the loopback run.
bun_app="$work/bun-app"
mkdir -p "$bun_app"
app_package "$bun_app"
if (cd "$bun_app" && "${clean_env[@]}" timeout 120 bun install --no-progress >install.log 2>&1); then
  out="$(cd "$bun_app" && "${clean_env[@]}" timeout 60 bun app.ts 2>&1)"
  if [ $? = 0 ]; then ok "Bun app: $out"; else bad "Bun app: $out"; fi
else
  bad "bun install: $(tail -5 "$bun_app/install.log")"
fi

# Deno app: npm install (npm picks the platform package by os/cpu), `npm:spead`, --allow-ffi only.
deno_app="$work/deno-app"
mkdir -p "$deno_app"
app_package "$deno_app"
sed -i 's/from "spead"/from "npm:spead"/' "$deno_app/app.ts"
if (cd "$deno_app" && "${clean_env[@]}" timeout 180 npm install --no-audit --no-fund --prefer-offline --loglevel=error >install.log 2>&1); then
  out="$(cd "$deno_app" && "${clean_env[@]}" timeout 60 deno run --allow-ffi app.ts 2>&1)"
  if [ $? = 0 ]; then ok "Deno app (--allow-ffi only): $out"; else bad "Deno app: $out"; fi
else
  bad "npm install: $(tail -5 "$deno_app/install.log")"
fi

# Strict TypeScript against the installed declarations (no skipLibCheck).
cat >"$bun_app/tsconfig.json" <<'JSON'
{
  "compilerOptions": {
    "target": "ES2022",
    "module": "ESNext",
    "moduleResolution": "bundler",
    "lib": ["ES2023", "ESNext.Disposable", "DOM"],
    "types": [],
    "strict": true,
    "exactOptionalPropertyTypes": true,
    "noUncheckedIndexedAccess": true,
    "skipLibCheck": false,
    "noEmit": true
  },
  "files": ["app.ts"]
}
JSON
out="$(cd "$bun_app" && "${clean_env[@]}" timeout 120 tsc --noEmit -p . 2>&1)"
if [ $? = 0 ]; then ok "tsc --noEmit (strict) against the installed types"; else bad "tsc: $(printf '%s\n' "$out" | head -20)"; fi

# The command-line tools as package bins.
for tool in spead-recv spead-send spead-bench; do
  [ -e "$bun_app/node_modules/.bin/$tool" ] || continue
  out="$(cd "$bun_app" && "${clean_env[@]}" timeout 30 bun x "$tool" --help 2>&1)"
  if [ $? = 0 ] && printf '%s' "$out" | grep -q "^usage: $tool"; then ok "bunx $tool --help"; else bad "bunx $tool --help: $out"; fi
done
[ -e "$bun_app/node_modules/.bin/spead-recv" ] || bad "the package has no spead-recv bin"
# The same tools as package exports under Deno: a loopback send -> receive.
(
  cd "$deno_app" || exit 1
  "${clean_env[@]}" timeout 60 deno run -A npm:spead/recv --quiet --interval 0 127.0.0.1:0 >recv.out 2>recv.err &
  rpid=$!
  for _ in $(seq 200); do grep -q "receiving on" recv.err 2>/dev/null && break; sleep 0.1; done
  port="$(sed -nE 's/.*receiving on 127\.0\.0\.1:([0-9]+).*/\1/p' recv.err)"
  "${clean_env[@]}" timeout 60 deno run -A npm:spead/send --heaps 10 --heap-size 8192 --rate 0.1 --interval 0 "127.0.0.1:$port" >send.out 2>&1
  wait "$rpid"
)
if grep -q "^Received 10 heaps" "$deno_app/recv.out" && grep -q "^Sent " "$deno_app/send.out"; then
  ok "deno run -A npm:spead/send -> npm:spead/recv: $(head -1 "$deno_app/recv.out")"
else
  bad "npm:spead/send -> npm:spead/recv: $(cat "$deno_app/recv.out" "$deno_app/recv.err" "$deno_app/send.out" 2>/dev/null | tail -5)"
fi
finish
