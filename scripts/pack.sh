#!/usr/bin/env bash
# Builds every package, nothing is published:
#   dist/pkg/spead-<v>.tgz                      the npm main package (ESM bundle + .d.ts + bins)
#   dist/pkg/spead-linux-{x64,arm64}-gnu-<v>.tgz one per platform (libspead.so, stripped,
#                                               baseline CPU, glibc >= 2.17 as manylinux2014)
#   dist/release/v<v>/libspead-<key>.so          the release assets the JSR loader downloads
#   dist/jsr/                                    the JSR package (sources + their checksums),
#                                               checked with `deno publish --dry-run`
# `npm install dist/pkg/spead-<v>.tgz dist/pkg/spead-linux-x64-gnu-<v>.tgz` is a working install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PATH="$root/node_modules/.bin:$PATH"
version="$(bun -e 'console.log(require("./package.json").version)')"
say() { printf 'pack: %s\n' "$*" >&2; }

rm -rf dist/pkg dist/stage dist/release dist/jsr
mkdir -p dist/pkg dist/stage "dist/release/v$version"

# Platform packages: key, Zig target, npm cpu. Keep in step with ffi/platforms.ts.
targets=("linux-x64-gnu x86_64-linux-gnu.2.17 x64" "linux-arm64-gnu aarch64-linux-gnu.2.17 arm64")
optional=""
checksums=""
for t in "${targets[@]}"; do
  read -r key zig_target cpu <<<"$t"
  say "libspead for $key ($zig_target, baseline CPU, stripped)"
  scripts/zig build -Dtarget="$zig_target" -Dcpu=baseline -Dstrip=true --prefix "dist/stage/zig-$key" --summary none
  lib="dist/stage/zig-$key/lib/libspead.so"
  bun scripts/check_elf.ts "$lib" "$cpu" 2.17
  dir="dist/stage/$key"
  mkdir -p "$dir"
  cp "$lib" "$dir/libspead.so"
  cp LICENSE "$dir/"
  cat >"$dir/package.json" <<EOF
{
  "name": "@spead/$key",
  "version": "$version",
  "description": "libspead for $key (glibc >= 2.17): the native core of the spead package",
  "license": "MIT",
  "os": ["linux"],
  "cpu": ["$cpu"],
  "libc": ["glibc"],
  "files": ["libspead.so", "LICENSE"]
}
EOF
  printf '# @spead/%s\n\nThe native library of [spead](https://www.npmjs.com/package/spead) for %s; installed by `spead` as an optional dependency.\n' \
    "$key" "$key" >"$dir/README.md"
  (cd "$dir" && npm pack --silent --pack-destination "$root/dist/pkg" >/dev/null)
  cp "$lib" "dist/release/v$version/libspead-$key.so"
  sum="$(sha256sum "$lib" | cut -d' ' -f1)"
  optional="$optional    \"@spead/$key\": \"$version\",\n"
  checksums="$checksums  \"$key\": \"$sum\",\n"
done

say "main package: ESM bundle, declarations, bins"
rm -rf dist/*.js dist/types dist/cli
bash scripts/build.sh --bundle
main="dist/stage/spead"
mkdir -p "$main/dist"
cp -r dist/*.js dist/types "$main/dist/"
[ -d dist/cli ] && cp -r dist/cli "$main/dist/"
cp README.md LICENSE "$main/"
bins=""
exports=""
for f in cli/*.ts; do
  [ -e "$f" ] || continue
  name="$(basename "$f" .ts)"
  bins="$bins    \"spead-$name\": \"./dist/cli/$name.js\",\n"
  exports="$exports    \"./$name\": \"./dist/cli/$name.js\",\n"
done
cat >"$main/package.json" <<EOF
{
  "name": "spead",
  "version": "$version",
  "description": "$(bun -e 'console.log(require("./package.json").description)')",
  "license": "MIT",
  "type": "module",
  "main": "./dist/mod.js",
  "types": "./dist/types/mod.d.ts",
  "exports": {
    ".": { "types": "./dist/types/mod.d.ts", "default": "./dist/mod.js" },
$(printf "$exports")    "./package.json": "./package.json"
  },
  "bin": {
$(printf "$bins" | sed '$ s/,$//')
  },
  "optionalDependencies": {
$(printf "$optional" | sed '$ s/,$//')
  },
  "engines": { "bun": ">=1.2", "deno": ">=2.0" },
  "os": ["linux"],
  "files": ["dist", "README.md", "LICENSE"]
}
EOF
(cd "$main" && npm pack --silent --pack-destination "$root/dist/pkg" >/dev/null)

say "JSR package: sources with the release checksums"
mkdir -p dist/jsr
cp -r mod.ts ffi src README.md LICENSE dist/jsr/
[ -d cli ] && cp -r cli dist/jsr/
cat >dist/jsr/ffi/release.ts <<EOF
/** Written by scripts/pack.sh: the release assets of this version and their SHA-256. */
export const releaseVersion: string = "$version";
/** SHA-256 (hex) of \`libspead-<key>.so\` by platform key. */
export const releaseChecksums: Readonly<Record<string, string>> = {
$(printf "$checksums" | sed '$ s/,$//')
};
EOF
bun -e '
const d = require("./deno.json");
const out = { name: d.name, version: d.version, license: d.license, exports: d.exports, publish: d.publish };
require("fs").writeFileSync("dist/jsr/deno.json", JSON.stringify(out, null, 2) + "\n");
'
if ! publish_log="$(cd dist/jsr && NO_COLOR=1 deno publish --dry-run --allow-dirty 2>&1)"; then
  printf '%s\n' "$publish_log" >&2
  say "deno publish --dry-run FAILED"
  exit 1
fi
printf '%s\n' "$publish_log" | grep -v '^ *file://' | tail -n 3 >&2

ls -l dist/pkg >&2
