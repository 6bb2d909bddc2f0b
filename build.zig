//! Single native build entry: `zig build` produces zig-out/lib/libspead.so,
//! `zig build test` runs the unit tests that live beside the code in zig/,
//! `zig build gen` writes ffi/abi.gen.ts and include/spead.h from the export
//! table (zig/abi/table.zig).
const std = @import("std");
const builtin = @import("builtin");

/// The pinned Zig version lives in .zig-version; the build refuses any other.
fn checkZigVersion(b: *std.Build) void {
    const pinned_raw = b.build_root.handle.readFileAlloc(b.allocator, ".zig-version", 64) catch {
        std.debug.panic("cannot read .zig-version", .{});
    };
    const pinned = std.mem.trim(u8, pinned_raw, " \t\r\n");
    if (!std.mem.eql(u8, pinned, builtin.zig_version_string)) {
        std.debug.panic("Zig {s} is pinned in .zig-version, but this is Zig {s}; run scripts/setup.sh", .{
            pinned, builtin.zig_version_string,
        });
    }
}

pub fn build(b: *std.Build) void {
    checkZigVersion(b);
    const target = b.standardTargetOptions(.{});
    const optimize = b.option(std.builtin.OptimizeMode, "optimize", "Optimisation mode (default ReleaseSafe)") orelse .ReleaseSafe;

    // scripts/pack.sh: -Dstrip=true for the packaged libraries (no debug info).
    const strip = b.option(bool, "strip", "Strip debug info from the library (default false)") orelse false;

    const root_module = b.createModule(.{
        .root_source_file = b.path("zig/root.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
        .strip = strip,
    });
    const lib = b.addLibrary(.{ .name = "spead", .linkage = .dynamic, .root_module = root_module });
    b.installArtifact(lib);

    const test_module = b.createModule(.{
        .root_source_file = b.path("zig/root.zig"),
        .target = target,
        .optimize = b.option(std.builtin.OptimizeMode, "test-optimize", "Optimisation of unit tests (default Debug)") orelse .Debug,
        .link_libc = true,
    });
    // e.g. `zig build test --fuzz -Dtest-filter="fuzz packet"` fuzzes one target.
    const test_filters = b.option([]const []const u8, "test-filter", "Run only the unit tests whose names contain this") orelse &.{};
    const unit_tests = b.addTest(.{ .root_module = test_module, .filters = test_filters });
    const run_tests = b.addRunArtifact(unit_tests);
    // zig/abi/gen.zig's test compares the generated files in the repository root.
    run_tests.setCwd(b.path("."));
    const test_step = b.step("test", "Run the Zig unit tests");
    test_step.dependOn(&run_tests.step);

    const gen_exe = b.addExecutable(.{ .name = "spead-gen", .root_module = b.createModule(.{
        .root_source_file = b.path("zig/gen.zig"),
        .target = b.graph.host,
        .optimize = .Debug,
        .link_libc = true,
    }) });
    const run_gen = b.addRunArtifact(gen_exe);
    run_gen.setCwd(b.path("."));
    const gen_step = b.step("gen", "Write ffi/abi.gen.ts and include/spead.h from zig/abi/table.zig");
    gen_step.dependOn(&run_gen.step);
}
