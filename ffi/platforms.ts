/**
 * The platforms that get a prebuilt libspead, by key (ffi/locate.ts
 * `platformKey`), with their npm package. scripts/pack.sh builds exactly these.
 * Linux only: the I/O core uses Linux system calls (recvmmsg, sendmmsg, UDP
 * GSO/GRO); glibc only: the library binds glibc's `memcpy` by version
 * (zig/core/fast_copy.zig).
 */
export const platformPackages: Readonly<Record<string, string>> = {
  "linux-x64-gnu": "@spead/linux-x64-gnu",
  "linux-arm64-gnu": "@spead/linux-arm64-gnu",
};
