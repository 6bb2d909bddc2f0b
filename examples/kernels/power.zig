//! Sum of squares of int8 samples for the tutorial receivers
//! (examples/tut_7_recv_power.ts, examples/tut_9_recv_memory_pool.ts), compiled
//! to wasm32 with SIMD128 by scripts/build-wasm.sh into power.wasm and its
//! embedding power_wasm.ts. The JS side (examples/power_kernel.ts) copies each
//! chunk of a heap into `chunk` and calls `sumSquares`, so the result is the
//! exact integer sum, as the plain JS loop in examples/cli.ts computes it.

/// Bytes per call: 16384 vectors of 16 samples, so an i32 lane gathers at
/// most 16384 * 4 * 128^2 = 2^30 before it is widened, and cannot overflow.
pub const chunk_bytes = 256 * 1024;

var chunk: [chunk_bytes]i8 align(16) = undefined;

/// Address of the chunk buffer in linear memory.
export fn chunkPtr() [*]i8 {
    return &chunk;
}

/// Size of the chunk buffer in bytes.
export fn chunkLen() u32 {
    return chunk_bytes;
}

const V8 = @Vector(16, i8);
const H8 = @Vector(8, i8);
const H16 = @Vector(8, i16);
const V32 = @Vector(4, i32);

/// wasm `i32x4.dot_i16x8_s`: lane k = a[2k]*b[2k] + a[2k+1]*b[2k+1].
extern fn @"llvm.wasm.dot"(H16, H16) V32;

inline fn squares(v: V8, comptime half: u1) V32 {
    const lanes = if (half == 0) [8]i32{ 0, 1, 2, 3, 4, 5, 6, 7 } else [8]i32{ 8, 9, 10, 11, 12, 13, 14, 15 };
    const w: H16 = @as(H8, @shuffle(i8, v, undefined, lanes)); // i16x8.extend_low/high_i8x16_s
    return @"llvm.wasm.dot"(w, w);
}

/// Sum of x*x over the first `n` bytes of the chunk (n <= chunk_bytes;
/// larger n is clamped). Returned as f64, exact below 2^53.
export fn sumSquares(n_in: u32) f64 {
    const n: usize = @min(n_in, chunk_bytes);
    // Each dot adds at most 2 * 128^2 = 2^15 to a lane; one lane of each
    // accumulator takes one dot per 32 bytes, at most 2^13 of them per call.
    var acc: [4]V32 = .{ @splat(0), @splat(0), @splat(0), @splat(0) };
    const pairs = n / 32;
    var i: usize = 0;
    while (i < pairs) : (i += 1) {
        const a: V8 = chunk[i * 32 ..][0..16].*;
        const b: V8 = chunk[i * 32 + 16 ..][0..16].*;
        acc[0] += squares(a, 0);
        acc[1] += squares(a, 1);
        acc[2] += squares(b, 0);
        acc[3] += squares(b, 1);
    }
    const sum = (acc[0] + acc[1]) + (acc[2] + acc[3]); // lanes <= 2^30
    var total: i64 = @reduce(.Add, @as(@Vector(4, i64), sum));
    var j = pairs * 32;
    while (j < n) : (j += 1) {
        const x: i64 = chunk[j];
        total += x * x;
    }
    return @floatFromInt(total);
}
