"""Runs one command and reports what it cost, for the benchmarks (bench/common.ts `runMeasured`).

    python bench/rusage.py TIMEOUT_S CMD [ARGS...]

The command's stdout is captured; its stderr passes through. On SIGTERM, or
when TIMEOUT_S passes, the command gets SIGINT (spead2's programs print their
totals on SIGINT), then SIGKILL 3 s later. At the end one JSON line goes to
stdout: exit status, whether it was interrupted, user and system CPU seconds
and minor/major page faults of the command alone (wait4's rusage: the wrapper's
own start-up is not counted), the CPU seconds of its busiest thread (sampled from
/proc every 20 ms, so the last <= 20 ms of each thread may be missed) with that
thread's name, and the command's stdout.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

timeout = float(sys.argv[1])
cmd = sys.argv[2:]
proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
chunks = []
reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
reader.start()
interrupted = threading.Event()


def interrupt(*_args) -> None:
    if interrupted.is_set():
        return
    interrupted.set()
    try:
        proc.send_signal(signal.SIGINT)
    except ProcessLookupError:
        return

    def kill_later() -> None:
        time.sleep(3)
        try:
            proc.kill()
        except ProcessLookupError:
            pass

    threading.Thread(target=kill_later, daemon=True).start()


thread_cpu: dict = {}  # tid -> (cpu seconds, name), the latest sample of each thread
ticks = os.sysconf("SC_CLK_TCK")


reaped = threading.Event()


def sample_threads() -> None:
    # Not proc.poll(): that reaps the child, and then wait4 below has no rusage to get.
    while not reaped.is_set():
        try:
            tids = os.listdir(f"/proc/{proc.pid}/task")
        except OSError:
            return
        for tid in tids:
            try:
                with open(f"/proc/{proc.pid}/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            thread_cpu[tid] = ((int(fields[11]) + int(fields[12])) / ticks, name)
        time.sleep(0.02)


threading.Thread(target=sample_threads, daemon=True).start()
signal.signal(signal.SIGTERM, interrupt)
timer = threading.Timer(timeout, interrupt)
timer.daemon = True
timer.start()
while True:
    try:
        _, status, ru = os.wait4(proc.pid, 0)
        reaped.set()
        break
    except InterruptedError:
        continue
timer.cancel()
reader.join(5)
print(json.dumps({
    "rc": os.waitstatus_to_exitcode(status),
    "interrupted": interrupted.is_set(),
    "user": ru.ru_utime,
    "sys": ru.ru_stime,
    "minflt": ru.ru_minflt,
    "majflt": ru.ru_majflt,
    "busiest_thread_cpu": max(thread_cpu.values())[0] if thread_cpu else None,
    "busiest_thread": max(thread_cpu.values())[1] if thread_cpu else None,
    "stdout": b"".join(chunks).decode(errors="replace"),
}), flush=True)
