/**
 * Multicast over a private network namespace that the test creates (unshare -n)
 * and that disappears with the child process: nothing leaves this machine.
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { root, runtimeCommand } from "./helpers.ts";

const [exe, exeArgs] = runtimeCommand(`${root}/tests/fixtures/multicast.ts`);
const command = [exe, ...exeArgs].map((a) => `'${a}'`).join(" ");

/** Whether this process may create a network namespace (root or user namespaces) and has `ip`. */
const canUnshare = spawnSync("unshare", ["-n", "--", "sh", "-c", "ip link set lo up && ip route add 239.0.0.0/8 dev lo"], {
  timeout: 10_000,
}).status === 0;

describe("multicast in a private network namespace", () => {
  test("UdpStream with ttl/interface -> addUdpReader(group, port) on 239.255.7.1", () => {
    if (!canUnshare) {
      // Reason: creating a network namespace needs CAP_SYS_ADMIN or user namespaces, and `ip`.
      console.warn("multicast test skipped: cannot create a network namespace (unshare -n + ip) here");
      return;
    }
    const r = spawnSync(
      "unshare",
      ["-n", "--", "sh", "-c", `ip link set lo up && ip route add 239.0.0.0/8 dev lo && exec ${command}`],
      { encoding: "utf8", timeout: 30_000 },
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe("multicast heaps 0:20000:1 1:20000:2 2:20000:3");
  });
});
