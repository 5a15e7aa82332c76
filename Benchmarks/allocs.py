#!/usr/bin/env python3
"""Heap allocations per echoed message, in steady state: `twine echo` vs `twine echo --async`.

    python3 Benchmarks/allocs.py --twine PATH [--rounds N] [--messages N]

Each server runs under bin/malloc_count.so (LD_PRELOAD; make c builds it), which counts
every malloc/calloc/realloc/memalign of the process and writes the count so far to a file
on SIGUSR2. Per configuration (connections x message size), the client connects, echoes
a warm-up (buffers, caches and the executor's queues reach their steady size), reads the
count, echoes --messages more messages, reads the count again: (after - before) / messages.
Rounds alternate the two servers; the figure is the median with min-max.
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
COUNTER = os.path.join(HERE, "bin", "malloc_count.so")
CONFIGS = [(100, 64), (100, 4096), (10, 65536)]


def start(argv, count_file):
    env = dict(os.environ, LD_PRELOAD=COUNTER, MALLOC_COUNT_FILE=count_file)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        sys.exit(f"allocs.py: {argv} printed {line!r}")
    return proc, int(line.rsplit(":", 1)[1])


def count(proc, count_file):
    os.unlink(count_file) if os.path.exists(count_file) else None
    proc.send_signal(signal.SIGUSR2)
    for _ in range(200):
        try:
            with open(count_file) as f:
                text = f.read()
            if text.endswith("\n"):
                return int(text)
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    sys.exit("allocs.py: the server wrote no count (is malloc_count.so preloaded?)")


def echo_rounds(conns, payload, rounds):
    for _ in range(rounds):
        for c in conns:
            c.sendall(payload)
        for c in conns:
            left = len(payload)
            while left:
                got = c.recv(min(left, 1 << 20))
                if not got:
                    sys.exit("allocs.py: the server closed a connection")
                left -= len(got)


def measure(argv, nconns, size, messages):
    fd, count_file = tempfile.mkstemp(prefix="twine-allocs-")
    os.close(fd)
    proc, port = start(argv, count_file)
    try:
        conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(nconns)]
        for c in conns:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = bytes((i * 31) & 0xFF for i in range(size))
        rounds = max(1, messages // nconns)
        echo_rounds(conns, payload, max(20, rounds // 5))  # warm-up
        time.sleep(0.05)
        before = count(proc, count_file)
        echo_rounds(conns, payload, rounds)
        after = count(proc, count_file)
        for c in conns:
            c.close()
        return (after - before) / (rounds * nconns)
    finally:
        proc.terminate()
        proc.wait()
        os.unlink(count_file) if os.path.exists(count_file) else None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--twine", required=True, help="the twine binary (a release build)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--messages", type=int, default=50000, help="messages echoed per measurement")
    args = p.parse_args()
    if not os.access(COUNTER, os.R_OK):
        sys.exit("allocs.py: bin/malloc_count.so not built (make -C Benchmarks c)")
    servers = {
        "twine echo": [args.twine, "echo", "--port", "0", "--max-connections", "1000000"],
        "twine echo --async": [args.twine, "echo", "--async", "--port", "0", "--max-connections", "1000000"],
    }
    print("| configuration | server | allocations per echoed message (median, min-max) |")
    print("|---|---|---|")
    for nconns, size in CONFIGS:
        results = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name, argv in servers.items():
                results[name].append(measure(argv, nconns, size, args.messages))
        for name, values in results.items():
            label = f"{nconns} conns x {size} B"
            print(f"| {label} | `{name}` | {statistics.median(values):.4f} ({min(values):.4f}-{max(values):.4f}) |", flush=True)


if __name__ == "__main__":
    main()
