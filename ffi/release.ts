/**
 * The release assets the Deno/JSR loader may download (ffi/download.ts): the
 * version and the SHA-256 of each platform's `libspead-<key>.so`. Empty in a
 * checkout and in the npm packages (they carry the library in platform
 * packages); scripts/pack.sh writes the filled-in copy into the JSR package.
 */
export const releaseVersion: string = "0.1.0";
/** SHA-256 (hex) of `libspead-<key>.so` by platform key. */
export const releaseChecksums: Readonly<Record<string, string>> = {};
