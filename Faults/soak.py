#!/usr/bin/env python3
"""A soak of Twine's servers (issue 11 item 8; `make soak`, never in `make test`).

    python3 Faults/soak.py --twine PATH --loadgen PATH [--minutes 10] [--out DIR]

For --minutes (SOAK_MINUTES) it runs, all at once:
  - connect / echo / close cycles against `twine echo` (64 in flight, each echo byte-checked,
    one close in ten a reset with SO_LINGER 0), aimed at 1,000,000 cycles: as many as fit;
  - 10,000 idle connections to the same server, held throughout (loadgen idle; the fd limit
    is raised here first);
  - a 1,000-user `twine chat` where five users say a line every second and everyone reads.
Every 10 s it samples each server's RSS and fds and the clients' counters into DIR/soak.csv,
and draws DIR/soak.svg at the end (python stdlib, no matplotlib). Stops by itself.

Pass: fds flat (within the in-flight churn while loaded, back to the start once the clients
leave), RSS growth under 5% from the end of the warm-up (the first fifth, at least 20 s) to
the end, exact counters (each server's `stopped` line: accepted = connections the clients
made, refused = 0), no corrupted echo. Ends with "N passed, N failed".
"""
import argparse
import csv
import os
import random
import re
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

results = {"passed": 0, "failed": 0}
IDLE = 10000
CHAT_USERS = 1000
INFLIGHT = 64
TARGET = 1_000_000


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)


class Server:
    def __init__(self, argv, name, out):
        self.name = name
        self.err_path = os.path.join("/tmp", f"twine-soak-{name}.stderr")
        self.out = open(os.path.join("/tmp", f"twine-soak-{name}.stdout"), "w+b")
        self.err = open(self.err_path, "w+b")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err)
        deadline = time.monotonic() + 30
        self.port = None
        while time.monotonic() < deadline and self.port is None and self.proc.poll() is None:
            m = re.search(rb"listening on \S+:(\d+)", os.pread(self.out.fileno(), 4096, 0))
            self.port = int(m.group(1)) if m else None
            time.sleep(0.05)
        if self.port is None:
            raise RuntimeError(f"{name} did not start")

    def fds(self):
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return -1

    def rss_kb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        except (OSError, AttributeError):
            return -1

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.err.flush()
        text = open(self.err_path, errors="replace").read()
        m = re.search(r"accepted=(\d+) refused=(\d+) \[twine\] stopped", text)
        return code, (int(m.group(1)), int(m.group(2))) if m else None, text


class Churn(threading.Thread):
    """connect / echo 64 bytes / close, INFLIGHT at once; 10% closed with a reset."""

    def __init__(self, port, stop):
        super().__init__(daemon=True)
        self.port, self.stop = port, stop
        self.cycles = self.connected = self.errors = self.corrupt = self.resets = 0

    def run(self):
        sel = selectors.DefaultSelector()
        rng = random.Random(1)
        live = {}

        def start():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.connect_ex(("127.0.0.1", self.port))
            payload = rng.randbytes(64)
            live[s] = [payload, b"", False]
            sel.register(s, selectors.EVENT_WRITE)

        def finish(s, ok):
            sel.unregister(s)
            del live[s]
            if ok and rng.random() < 0.1:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.resets += 1
            s.close()

        while not self.stop.is_set() or live:
            while not self.stop.is_set() and len(live) < INFLIGHT and self.cycles + len(live) < TARGET:
                start()
            if not live:
                if self.cycles >= TARGET:
                    self.stop.wait(0.5)
                continue
            for key, ev in sel.select(0.2):
                s = key.fileobj
                st = live[s]
                try:
                    if ev & selectors.EVENT_WRITE:
                        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                            raise OSError("connect failed")
                        if not st[2]:
                            self.connected += 1
                            st[2] = True
                        s.send(st[0])
                        sel.modify(s, selectors.EVENT_READ)
                        continue
                    chunk = s.recv(256)
                    if not chunk:
                        raise OSError("EOF")
                    st[1] += chunk
                    if len(st[1]) >= len(st[0]):
                        if st[1] != st[0]:
                            self.corrupt += 1
                        self.cycles += 1
                        finish(s, True)
                except OSError:
                    self.errors += 1
                    finish(s, False)
        sel.close()


class Chat(threading.Thread):
    """CHAT_USERS users; five random users say a line every second; everyone drains."""

    def __init__(self, port, stop):
        super().__init__(daemon=True)
        self.port, self.stop = port, stop
        self.users = self.said = self.heard = self.bad = self.lost = 0
        self.ready = threading.Event()

    def run(self):
        sel = selectors.DefaultSelector()
        socks = []
        for _ in range(CHAT_USERS):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, [b""])
            socks.append(s)
        self.users = len(socks)
        self.ready.set()
        rng = random.Random(2)
        next_talk = time.monotonic()
        while not self.stop.is_set():
            if time.monotonic() >= next_talk:
                next_talk += 1.0
                for s in rng.sample(socks, 5):
                    line = "".join(rng.choice("abcdefghij") for _ in range(rng.randint(1, 80)))
                    try:
                        s.send(f"{line}\r\n".encode())
                        self.said += 1
                    except BlockingIOError:
                        pass
            for key, _ in sel.select(0.1):
                try:
                    chunk = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    self.lost += 1
                    sel.unregister(key.fileobj)
                    continue
                buf = key.data[0] + chunk
                *lines, key.data[0] = buf.split(b"\n")
                for raw in lines:
                    line = raw.rstrip(b"\r")
                    if line.startswith(b"<"):
                        self.heard += 1
                        if not re.match(rb"^<guest-\d+> [a-j]{1,80}$", line):
                            self.bad += 1
        for s in socks:
            s.close()
        sel.close()


def svg(rows, path):
    """Three stacked panels (RSS MiB, fds, churn cycles/s) against minutes."""
    W, H, P = 760, 180, 50
    series = [("RSS, MiB", [("echo", "echo_rss_kb", 1 / 1024, "#e15759"), ("chat", "chat_rss_kb", 1 / 1024, "#4e79a7")]),
              ("open fds", [("echo", "echo_fds", 1, "#e15759"), ("chat", "chat_fds", 1, "#4e79a7")]),
              ("churn cycles/s", [("cycles/s", "cycles_per_s", 1, "#59a14f")])]
    t = [float(r["t_s"]) / 60 for r in rows]
    tmax = max(t) or 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{len(series) * (H + 30) + 20}" '
           'font-family="sans-serif" font-size="11">']
    for i, (title, lines) in enumerate(series):
        y0 = 20 + i * (H + 30)
        vals = [float(r[key]) * k for _, key, k, _ in lines for r in rows]
        vmax = max(vals) * 1.1 if vals and max(vals) > 0 else 1
        out.append(f'<text x="{P}" y="{y0 - 5}" font-weight="bold">{title}</text>')
        out.append(f'<rect x="{P}" y="{y0}" width="{W - P - 10}" height="{H}" fill="none" stroke="#999"/>')
        for frac in (0, 0.5, 1):
            y = y0 + H - frac * H
            out.append(f'<text x="{P - 4}" y="{y + 4:.0f}" text-anchor="end">{vmax * frac:.0f}</text>')
        for j, (label, key, k, color) in enumerate(lines):
            pts = " ".join(f"{P + (tt / tmax) * (W - P - 10):.1f},{y0 + H - float(r[key]) * k / vmax * H:.1f}"
                           for tt, r in zip(t, rows))
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{pts}"/>')
            out.append(f'<text x="{W - 80}" y="{y0 + 14 + 13 * j}" fill="{color}">{label}</text>')
        out.append(f'<text x="{W - 10}" y="{y0 + H + 14}" text-anchor="end">{tmax:.1f} min</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--twine", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--out", default=".")
    ap.add_argument("--interval", type=float, default=10)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"soak: {args.minutes:g} min; fd limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}", flush=True)
    echo = Server([args.twine, "echo", "--port", "0", "--max-connections", "1000000"], "echo", args.out)
    chat_srv = Server([args.twine, "chat", "--port", "0", "--max-pending-bytes", str(4 << 20)], "chat", args.out)
    base = {"echo_fds": echo.fds(), "chat_fds": chat_srv.fds()}
    stop = threading.Event()
    idle = subprocess.Popen([args.loadgen, "idle", "--port", str(echo.port), "--conns", str(IDLE),
                             "--hold", str(args.minutes * 60 + 120), "--connect-timeout", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    idle_ready = idle.stdout.readline()  # "ready N connections ..."
    m = re.match(r"ready (\d+)", idle_ready)
    idle_up = int(m.group(1)) if m else 0
    print(f"idle: {idle_ready.strip()}", flush=True)
    chat = Chat(chat_srv.port, stop)
    chat.start()
    chat.ready.wait(120)
    churn = Churn(echo.port, stop)
    churn.start()
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    csv_path = os.path.join(args.out, "soak.csv")
    fields = ["t_s", "echo_rss_kb", "echo_fds", "chat_rss_kb", "chat_fds", "cycles", "cycles_per_s", "churn_errors",
              "idle_up", "chat_users", "chat_said", "chat_heard"]
    rows = []
    last_c, last_t = 0, t0
    while True:
        now = time.monotonic()
        row = {"t_s": f"{now - t0:.0f}", "echo_rss_kb": echo.rss_kb(), "echo_fds": echo.fds(),
               "chat_rss_kb": chat_srv.rss_kb(), "chat_fds": chat_srv.fds(), "cycles": churn.cycles,
               "cycles_per_s": f"{(churn.cycles - last_c) / (now - last_t) if now - last_t > 1 else 0:.0f}",
               "churn_errors": churn.errors, "idle_up": idle_up, "chat_users": chat.users - chat.lost,
               "chat_said": chat.said, "chat_heard": chat.heard}
        last_c, last_t = churn.cycles, now
        rows.append(row)
        print("sample " + " ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        if now >= end or echo.proc.poll() is not None or chat_srv.proc.poll() is not None:
            break
        time.sleep(min(args.interval, max(0.0, end - time.monotonic())))
    elapsed = time.monotonic() - t0
    stop.set()
    churn.join(30)
    chat.join(30)
    idle.send_signal(signal.SIGTERM)
    try:
        idle.wait(30)
    except subprocess.TimeoutExpired:
        idle.kill()
    settle = time.monotonic() + 30
    while time.monotonic() < settle and (echo.fds() > base["echo_fds"] + 2 or chat_srv.fds() > base["chat_fds"] + 2):
        time.sleep(0.5)
    after = {"echo_fds": echo.fds(), "chat_fds": chat_srv.fds()}
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    svg(rows, os.path.join(args.out, "soak.svg"))

    rate = churn.cycles / elapsed
    print(f"\nchurn: {churn.cycles} cycles in {elapsed:.0f} s = {rate:.0f}/s ({churn.resets} reset), "
          f"{churn.errors} errors, {churn.corrupt} corrupted; idle {idle_up}; chat {chat.users} users, "
          f"{chat.said} lines said, {chat.heard} heard, {chat.lost} dropped", flush=True)
    warm = max(1, len(rows) // 5) if len(rows) > 2 else 0
    loaded = rows[warm:]
    for name in ("echo", "chat"):
        r0, r1 = int(loaded[0][f"{name}_rss_kb"]), int(loaded[-1][f"{name}_rss_kb"])
        growth = (r1 - r0) / r0 * 100 if r0 > 0 else 0
        print(f"{name}: RSS {rows[0][f'{name}_rss_kb']} KiB at start, {r0} KiB after warm-up, {r1} KiB at the end "
              f"({growth:+.1f}%); fds {base[f'{name}_fds']} before, {rows[0][f'{name}_fds']}..."
              f"{max(int(r[f'{name}_fds']) for r in rows)} loaded, {after[f'{name}_fds']} after", flush=True)
        check(f"{name}: RSS growth after warm-up under 5%", growth < 5.0, f"{r0} -> {r1} KiB ({growth:+.1f}%)")
        fds = [int(r[f"{name}_fds"]) for r in loaded]
        check(f"{name}: fds flat while loaded (spread within the churn's {INFLIGHT} in flight)",
              max(fds) - min(fds) <= INFLIGHT + 4, f"{min(fds)}..{max(fds)}")
        check(f"{name}: fds back to the start once the clients left", abs(after[f"{name}_fds"] - base[f"{name}_fds"]) <= 2,
              f"{base[f'{name}_fds']} -> {after[f'{name}_fds']}")
    check("echo: no corrupted echo, no failed cycle", churn.corrupt == 0 and churn.errors == 0,
          f"{churn.corrupt} corrupted, {churn.errors} errors")
    check("idle: all 10,000 idle connections up", idle_up == IDLE, f"{idle_up}")
    check("chat: every user stayed, lines were relayed well-formed",
          chat.lost == 0 and chat.bad == 0 and chat.heard > 0, f"lost {chat.lost}, bad {chat.bad}, heard {chat.heard}")
    code, counts, text = echo.stop()
    expected = churn.connected + idle_up
    check("echo: exits 0; counters exact (accepted = cycles connected + idle, refused 0)",
          code == 0 and counts == (expected, 0), f"exit {code}, stopped {counts}, expected ({expected}, 0)")
    code, counts, text = chat_srv.stop()
    check("chat: exits 0; counters exact (accepted = users, refused 0)", code == 0 and counts == (chat.users, 0),
          f"exit {code}, stopped {counts}, expected ({chat.users}, 0)")
    print(f"wrote {csv_path} and soak.svg; {results['passed']} passed, {results['failed']} failed")
    print(f"{results['passed']} passed, {results['failed']} failed", flush=True)
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
