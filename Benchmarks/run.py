#!/usr/bin/env python3
"""Benchmark orchestrator for Twine (python3 standard library only).

    python3 Benchmarks/run.py --twine PATH [--quick] [--rounds N]
                              [--servers epoll,libevent,nio,twisted,twine]
                              [--out Benchmarks/BENCHMARKS.md]
    python3 Benchmarks/run.py --smoke --twine PATH [--c-host PATH]
    python3 Benchmarks/run.py --c-host PATH --only-embedding [--rounds N]

Bench: every configuration is measured on every available server, the
servers interleaved round by round (A B C D E, A B C D E, ...), each time on
a fresh server process pinned to CPU 0 with the load generator pinned to
CPU 1.  The primary figure is server CPU time per request (from the load
generator's --server-pid accounting), shown beside requests/s and p99, each
as median and min-max over the rounds and as a ratio to the plain epoll
server's run of the same round (median over rounds).  Writes the report
(--out), benchmarks.svg and benchmarks.json (raw runs; --from-json redraws)
next to it; the section "## What each change bought" of an existing report
is kept verbatim.

Embedding (with --c-host, the example C host of Examples/c-host): one more
row, the cost of mounting Twine on a C program's own libevent loop: the same
host process serving Twine's echo through the C API vs serving a plain C
bufferevent echo (--c-echo), interleaved round by round; the figure is the C
echo's CPU per request divided by Twine's (>= 0.95 is the target: embedding
costs at most ~5%).  --only-embedding measures just that row and writes no report.

Smoke: builds nothing; runs the load generator briefly against each
available server (C servers, Twine, and NIO/Twisted only if already built),
checks zero errors and a non-zero rate, checks that the byte verification
catches bin/corrupt_server, and ends with the line "N passed, N failed".
"""
import argparse
import atexit
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)  # the repository
BIN = os.path.join(HERE, "bin")
LOADGEN = os.path.join(BIN, "loadgen")
NIO_SERVER = os.path.join(HERE, "nio", ".build", "release", "nio-server")
VENV_PYTHON = os.path.join(HERE, ".venv", "bin", "python")
TWISTED_SERVER = os.path.join(HERE, "twisted", "server.py")
GREETING = "Hello This is HD's Test protocol\r\n"
KEEP_HEADER = "## What each change bought"
ALL_SERVERS = ["epoll", "libevent", "nio", "twisted", "twine", "twine-async", "twine-base"]
LABELS = {
    "chost-c": "C host, C bufferevent echo",
    "chost-twine": "C host, Twine echo (C API)",
    "chost-twine-c": "C host, echo written in C on Twine (twine_factory_new_callbacks)",
    "epoll": "epoll (C floor)",
    "libevent": "libevent C",
    "nio": "SwiftNIO",
    "twisted": "Twisted",
    "twine": "Twine",
    "twine-async": "Twine, async API (echo --async)",
    "twine-base": "Twine, baseline build",
}
COLORS = {
    "epoll": "#888888",
    "libevent": "#4e79a7",
    "nio": "#f28e2b",
    "twisted": "#59a14f",
    "twine": "#e15759",
    "twine-async": "#ff9da7",
    "twine-base": "#b07aa1",
}
# The TLS rows: servers that have a TLS echo (for epoll, the hand-written epoll + OpenSSL floor,
# c/tls_epoll_server.c, which the others are compared with).
TLS_SERVERS = ("epoll", "libevent", "twine", "twine-base")
BASE_NAMES = {"epoll": "epoll", "libevent": "libevent C"}
SATURATED_PCT = 90.0  # loadgen CPU at or above this: flag it
NOISY_PCT = 25.0  # other processes used more than this much of a CPU during a run: retry it
RETRIES = 2
RETRY_BUDGET = {"s": 180.0}  # seconds all retries together may add (run time stays bounded)
C_HOST = {"path": None}  # the example C host (--c-host), for the embedding row
BASELINE = {"path": None}  # an earlier twine binary (--twine-baseline), measured as server "twine-base"


class Interrupted(Exception):
    pass


def _on_sigterm(signum, frame):
    raise Interrupted()


# --------------------------------------------------------------------------
# process handling: every process we start is registered and always stopped


LIVE = []


def stop_process(proc, grace=3.0):
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            proc.wait()
    if proc in LIVE:
        LIVE.remove(proc)


def stop_all():
    for proc in list(LIVE):
        try:
            stop_process(proc, grace=2.0)
        except Exception:  # keep going: every process must be stopped
            pass


def pin(cpu):
    if pin.enabled:
        return ["taskset", "-c", str(cpu)]
    return []


pin.enabled = bool(shutil.which("taskset")) and (os.cpu_count() or 1) >= 2


class Server:
    """A server process started for one measurement."""

    def __init__(self, argv, name):
        self.name = name
        self.argv = argv
        self.out = tempfile.TemporaryFile(mode="w+b")
        self.err = tempfile.TemporaryFile(mode="w+b")
        self.proc = None
        self.port = None
        self.host = "127.0.0.1"
        # a server started with --unix PATH listens there instead of on a TCP port
        self.unix = argv[argv.index("--unix") + 1] if "--unix" in argv else None

    def start(self, timeout=20.0):
        self.proc = subprocess.Popen(
            pin(0) + self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self.out,
            stderr=self.err,
            cwd=HERE,
        )
        LIVE.append(self.proc)
        deadline = time.monotonic() + timeout
        pattern = re.compile(rb"^listening on (\S+):(\d+)\s*$", re.M)
        while time.monotonic() < deadline:
            self.out.seek(0)
            text = self.out.read()
            if self.unix and f"listening on {self.unix}".encode() in text:
                return
            m = pattern.search(text)
            if m:
                host = m.group(1).decode()
                self.host = host if host.startswith("127.") else "127.0.0.1"
                self.port = int(m.group(2))
                return
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before listening: {self.stderr_tail()}"
                )
            time.sleep(0.01)
        raise RuntimeError(f"{self.name} printed no 'listening on' line within {timeout:.0f} s: {self.stderr_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_tail(self, n=400):
        self.err.seek(0)
        data = self.err.read().decode(errors="replace").strip()
        return data[-n:] if data else "(no stderr)"

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)
        self.out.close()
        self.err.close()


def run_loadgen(args, server, timeout):
    """Run the load generator; returns (exit code, parsed RESULT or None, stderr)."""
    where = ["--unix", server.unix] if server.unix else ["--host", server.host, "--port", str(server.port)]
    argv = pin(1) + [LOADGEN] + args + where
    if server.proc is not None:
        argv += ["--server-pid", str(server.proc.pid)]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=HERE)
    LIVE.append(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        return None, None, f"loadgen timed out after {timeout:.0f} s"
    finally:
        if proc in LIVE:
            LIVE.remove(proc)
    result = None
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("RESULT "):
            try:
                result = json.loads(line[len("RESULT "):])
            except ValueError:
                pass
    return proc.returncode, result, err.decode(errors="replace").strip()


# --------------------------------------------------------------------------
# servers


def tls_files(_made={}):
    """(certificate, key) for the TLS row: a self-signed pair made once per run with the
    openssl CLI in a temporary folder removed at exit; None without openssl."""
    if "pair" not in _made:
        _made["pair"] = None
        openssl = shutil.which("openssl")
        if openssl:
            folder = tempfile.mkdtemp(prefix="twine-bench-tls-")
            atexit.register(shutil.rmtree, folder, True)
            cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
            made = subprocess.run(
                [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                 "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                capture_output=True, timeout=60,
            )
            if made.returncode == 0:
                _made["pair"] = (cert, key)
    return _made["pair"]


def repo_path(path):
    """`path` as the report names it: relative to the repository when inside it (`.build/release/twine`),
    so a report says the same wherever the repository was checked out; as given otherwise."""
    if not path:
        return path
    full = os.path.abspath(path)
    if os.path.commonpath([full, ROOT]) == ROOT:
        return os.path.relpath(full, ROOT)
    return path


def server_argv(name, mode, twine):
    """argv for server `name` in `mode` (echo|hello|tls-echo), or (None, why-missing)."""
    if mode == "tls-echo":
        if name not in TLS_SERVERS:
            return None, f"{name} has no TLS echo here"
        pair = tls_files()
        if pair is None:
            return None, "no openssl CLI to make the TLS row's certificate"
        if name in ("libevent", "epoll"):
            path = os.path.join(BIN, "libevent_tls_server" if name == "libevent" else "tls_epoll_server")
            if not os.access(path, os.X_OK):
                return None, f"{repo_path(path)} not built (make c)"
            return [path, "echo", "--port", "0", "--cert", pair[0], "--key", pair[1]], None
        argv, why = server_argv(name, "echo", twine)
        return (argv + ["--tls-cert", pair[0], "--tls-key", pair[1]], None) if argv else (None, why)
    if name == "epoll":
        path = os.path.join(BIN, "epoll_server")
        return ([path, mode, "--port", "0"], None) if os.access(path, os.X_OK) else (None, f"{repo_path(path)} not built (make c)")
    if name == "libevent":
        path = os.path.join(BIN, "libevent_server")
        return ([path, mode, "--port", "0"], None) if os.access(path, os.X_OK) else (None, f"{repo_path(path)} not built (make c)")
    if name == "nio":
        if not os.access(NIO_SERVER, os.X_OK):
            return None, "nio/.build/release/nio-server not built (make nio)"
        return [NIO_SERVER, mode, "--port", "0"], None
    if name == "twisted":
        if not os.access(VENV_PYTHON, os.X_OK):
            return None, "Twisted venv .venv not present (make twisted-venv)"
        return [VENV_PYTHON, TWISTED_SERVER, mode, "--port", "0"], None
    if name in ("chost-c", "chost-twine", "chost-twine-c"):
        path = C_HOST["path"]
        if not path or not os.access(path, os.X_OK):
            return None, f"C host {repo_path(path)} not built (make c-host)"
        argv = [path, "--echo-port", "0", "--heartbeat-ms", "1000"]
        extra = {"chost-c": ["--c-echo"], "chost-twine-c": ["--twine-c-echo"]}.get(name, [])
        return argv + extra, None
    if name == "twine-async":  # the same binary's async echo (TwineAsync); echo rows only
        if mode != "echo":
            return None, "twine echo --async serves echo only"
        argv, why = server_argv("twine", mode, twine)
        return (argv[:2] + ["--async"] + argv[2:] if argv else None), why
    if name == "twine-base":
        if not BASELINE["path"]:
            return None, "no --twine-baseline given"
        name, twine = "twine", BASELINE["path"]
    if name == "twine":
        if not twine:
            return None, "no --twine given"
        if not os.access(twine, os.X_OK):
            return None, f"Twine binary {repo_path(twine)} not found (build it first)"
        if mode == "echo":
            return [twine, "echo", "--port", "0", "--max-connections", "1000000"], None
        return [twine, "hello", "--port", "0"], None
    return None, f"unknown server {name}"


# --------------------------------------------------------------------------
# configurations


class Config:
    def __init__(self, key, title, kind, args, server_mode="echo", short=None, base="epoll"):
        self.key = key
        self.base = base  # the server the others are compared with (× base)
        self.title = title
        self.short = short or title  # chart label
        self.kind = kind  # echo | stream | connect | idle
        self.args = args
        self.server_mode = server_mode


FULL_CONFIGS = [
    Config("echo-1x64", "echo, 1 conn × 64 B", "echo", ["echo", "--conns", "1", "--size", "64"], short="echo 1 × 64 B"),
    Config("echo-100x64", "echo, 100 conns × 64 B", "echo", ["echo", "--conns", "100", "--size", "64"], short="echo 100 × 64 B"),
    Config("echo-100x4k", "echo, 100 conns × 4 KiB", "echo", ["echo", "--conns", "100", "--size", "4096"], short="echo 100 × 4 KiB"),
    Config("echo-10x64k", "echo, 10 conns × 64 KiB", "echo", ["echo", "--conns", "10", "--size", "65536"], short="echo 10 × 64 KiB"),
    Config("echo-1000x64", "echo, 1,000 conns × 64 B", "echo", ["echo", "--conns", "1000", "--size", "64"], short="echo 1,000 × 64 B"),
    Config(
        "pipe-100x64x16",
        "pipelined echo, 100 conns × 64 B × depth 16",
        "echo",
        ["echo", "--conns", "100", "--size", "64", "--depth", "16"],
        short="pipelined 100 × 64 B × 16",
    ),
    Config("stream-4", "stream, 4 conns × 64 KiB chunks (8 in flight)", "stream", ["stream", "--conns", "4"], short="stream 4 × 64 KiB"),
    Config("connect-50", "connect + greeting + close, 50 in flight", "connect", ["connect", "--inflight", "50"], "hello", short="connect+greet, 50"),
    Config(
        "tls-echo-100x4k",
        "TLS echo, 100 conns × 4 KiB (× epoll + OpenSSL)",
        "echo",
        ["echo", "--conns", "100", "--size", "4096", "--tls", "1"],
        "tls-echo",
        short="TLS echo 100 × 4 KiB",
    ),
    Config(
        "tls-echo-10x64k",
        "TLS echo, 10 conns × 64 KiB (× epoll + OpenSSL)",
        "echo",
        ["echo", "--conns", "10", "--size", "65536", "--tls", "1"],
        "tls-echo",
        short="TLS echo 10 × 64 KiB",
    ),
    Config(
        "tls-handshake-50",
        "TLS full handshakes, 50 in flight, P-256 certificate (× epoll + OpenSSL)",
        "connect",
        ["connect", "--inflight", "50", "--tls", "1"],
        "tls-echo",
        short="TLS handshakes, 50",
    ),
    Config("idle-10k", "idle, 10,000 connections (server RSS per connection)", "idle", ["idle", "--conns", "10000"]),
]
QUICK_KEYS = [
    "echo-100x64", "echo-100x4k", "echo-10x64k", "connect-50", "tls-echo-100x4k", "tls-echo-10x64k",
    "tls-handshake-50", "idle-10k",
]
# The embedding row: small messages, where a per-request overhead would show most.
EMBED = Config(
    "embed-100x64", "embedding: C host echo, 100 conns × 64 B", "echo", ["echo", "--conns", "100", "--size", "64"]
)
EMBED_SERVERS = ["chost-c", "chost-twine", "chost-twine-c"]
EMBED_TARGET = 0.95


def wait_for_quiet(limit=15.0, max_wait=10.0):
    """Wait (bounded) until other processes leave the CPUs mostly idle."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        load = background_load(0.5)
        if load is None or load < limit:
            return
    return


def measure(name, cfg, twine, warmup, duration):
    """measure_once, repeated (up to RETRIES times, within RETRY_BUDGET) while
    other processes used the CPUs during the run."""
    res, note = measure_once(name, cfg, twine, warmup, duration)
    tries = 0
    while res is not None and (res.get("other_cpu_pct") or 0) > NOISY_PCT:
        other = res["other_cpu_pct"]
        if tries >= RETRIES or RETRY_BUDGET["s"] <= 0:
            res["noisy"] = True
            extra = f"other processes used {other:.0f}% of a CPU during the run (kept after {tries} retries)"
            return res, (note + "; " + extra) if note else extra
        tries += 1
        print(f"    (other processes used {other:.0f}% of a CPU; measuring {name} again)", flush=True)
        t0 = time.monotonic()
        wait_for_quiet(max_wait=min(10.0, max(0.0, RETRY_BUDGET["s"])))
        res, note = measure_once(name, cfg, twine, warmup, duration)
        RETRY_BUDGET["s"] -= time.monotonic() - t0
    return res, note


def measure_once(name, cfg, twine, warmup, duration):
    """One fresh server, one loadgen run.  Returns (result dict or None, note)."""
    argv, why = server_argv(name, cfg.server_mode, twine)
    if argv is None:
        return None, why
    server = Server(argv, name)
    try:
        server.start()
        if cfg.kind == "idle":
            # warm the server up first so one-time set-up is in the baseline
            run_loadgen(["echo", "--conns", "4", "--size", "64", "--warmup", "0", "--duration", "0.2"], server, 30)
            rc, res, err = run_loadgen(
                cfg.args + ["--hold", "0.5", "--connect-timeout", "60"], server, 90
            )
        else:
            rc, res, err = run_loadgen(
                cfg.args + ["--warmup", str(warmup), "--duration", str(duration), "--connect-timeout", "30"],
                server,
                warmup + duration + 60,
            )
        note = None
        if res is None:
            note = f"no result (exit {rc}): {err[-300:]}"
        elif rc != 0 or res.get("errors"):
            note = f"{res.get('errors')} errors {res.get('error_kinds')}: {err[-300:]}"
        if not server.alive():
            note = (note + "; " if note else "") + f"server died: {server.stderr_tail()}"
        return res, note
    except RuntimeError as e:
        return None, str(e)
    finally:
        server.stop()


# --------------------------------------------------------------------------
# report


def fmt_num(v, digits=3):
    if v is None:
        return "–"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.{digits}f}"


def summarize(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def cell(summary):
    if summary is None:
        return "–"
    med, lo, hi = summary
    if lo == hi:
        return fmt_num(med)
    return f"{fmt_num(med)} ({fmt_num(lo)}–{fmt_num(hi)})"


def round_ratios(runs, base_runs, key):
    """Ratios to the epoll run of the same round, summarized (median, min, max).

    Pairing each run with epoll's run of the same round (rather than dividing
    medians) cancels drift that hits a whole round; results without round
    numbers (older JSON) fall back to the ratio of medians."""
    base_by_round = {r.get("round"): metric(r, key) for r in base_runs}
    ratios = []
    for r in runs:
        v, b = metric(r, key), base_by_round.get(r.get("round"))
        if r.get("round") is not None and v is not None and b:
            ratios.append(v / b)
    if ratios:
        return summarize(ratios)
    summ = summarize([metric(r, key) for r in runs])
    base = summarize([metric(r, key) for r in base_runs])
    if summ is None or base is None or not base[0]:
        return None
    return summ[0] / base[0], summ[0] / base[0], summ[0] / base[0]


def ratio(rs, with_range=False):
    if rs is None:
        return "–"
    if with_range and rs[1] != rs[2]:
        return f"{rs[0]:.2f}× [{rs[1]:.2f}–{rs[2]:.2f}]"
    return f"{rs[0]:.2f}×"


def metric(res, key):
    v = res.get(key)
    if v is None or (isinstance(v, (int, float)) and v < 0):
        return None
    return float(v)


def machine_info(twine):
    def cmd(argv):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return (out.stdout or out.stderr).strip()
        except (OSError, subprocess.SubprocessError):
            return None

    info = {}
    info["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    info["nproc"] = str(os.cpu_count())
    info["kernel"] = platform.release()
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cpu"] = model or platform.machine()
    info["libevent"] = cmd(["pkg-config", "--modversion", "libevent_core"]) or "?"
    swift = shutil.which("swift") or ("/opt/swift/usr/bin/swift" if os.path.exists("/opt/swift/usr/bin/swift") else None)
    sv = cmd([swift, "--version"]) if swift else None
    info["swift"] = next((ln for ln in (sv or "").splitlines() if "Swift version" in ln), sv or "?").strip()
    resolved = os.path.join(HERE, "nio", "Package.resolved")
    try:
        with open(resolved) as f:
            pins = json.load(f).get("pins", [])
        info["swift-nio"] = next((p["state"].get("version") for p in pins if p.get("identity") == "swift-nio"), "?")
    except (OSError, ValueError, KeyError):
        info["swift-nio"] = "?"
    info["twisted"] = (
        cmd([VENV_PYTHON, "-c", "import sys, twisted; print(twisted.__version__, 'on Python', sys.version.split()[0])"])
        if os.access(VENV_PYTHON, os.X_OK)
        else "not installed"
    )
    info["cc"] = (cmd(["cc", "--version"]) or "?").splitlines()[0]
    rev = cmd(["git", "-C", HERE, "rev-parse", "--short", "HEAD"])
    if rev and re.fullmatch(r"[0-9a-f]+", rev):
        dirty = cmd(["git", "-C", HERE, "status", "--porcelain", "--", ".."])
        info["twine commit"] = rev + (" (+ uncommitted changes)" if dirty else "")
    info["twine binary"] = repo_path(twine) if twine else "–"
    info["pinning"] = "server on CPU 0, loadgen on CPU 1 (taskset)" if pin.enabled else "none (taskset missing or 1 CPU)"
    return info


def background_load(seconds=1.0):
    """Share of CPU time used by others while nothing of ours runs."""

    def snap():
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return sum(vals[:8]), idle

    try:
        t0, i0 = snap()
        time.sleep(seconds)
        t1, i1 = snap()
        return 100.0 * (1 - (i1 - i0) / max(1, t1 - t0))
    except OSError:
        return None


def read_kept_section(path):
    """The existing report's text from the line `## What each change bought` on, or None."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    m = re.search(r"^" + re.escape(KEEP_HEADER) + r"[ \t]*$", text, re.M)
    return text[m.start():] if m else None


def write_svg(path, configs, servers, results):
    """Horizontal grouped bars: server CPU per request / epoll's, log2 axis."""
    others = [s for s in servers if s != "epoll"]
    rows = []
    for cfg in configs:
        if cfg.kind == "idle":
            continue
        base_runs = results.get(cfg.key, {}).get(cfg.base, [])
        bars = []
        for s in others:
            if s == cfg.base:
                continue
            rs = round_ratios(results.get(cfg.key, {}).get(s, []), base_runs, "server_cpu_per_req_us")
            if rs:
                bars.append((s, rs[0], rs[1], rs[2]))
        rows.append((cfg, bars))
    import math

    max_ratio = max([b[3] for _, bars in rows for b in bars] + [4.0])
    hi_exp = max(2, math.ceil(math.log2(max_ratio)))
    lo_exp = -1
    left, right, top = 200, 50, 70
    plot_w = 560
    bar_h, gap = 14, 18
    height = top + sum(max(1, len(b)) * bar_h + gap for _, b in rows) + 60
    width = left + plot_w + right

    def x_of(r):
        r = max(r, 2.0 ** lo_exp)
        return left + plot_w * (math.log2(r) - lo_exp) / (hi_exp - lo_exp)

    def esc(s):
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">'
        "Server CPU time per request ÷ plain epoll's in the same round (median; whiskers min–max)</text>",
        f'<text x="{width / 2}" y="40" text-anchor="middle" fill="#555">'
        "1× = the C epoll floor; lower is better; log scale</text>",
    ]
    # grid
    for e in range(lo_exp, hi_exp + 1):
        x = x_of(2.0 ** e)
        label = f"{2.0 ** e:g}×"
        stroke = "#333" if e == 0 else "#ddd"
        out.append(f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{height - 45}" stroke="{stroke}"/>')
        out.append(f'<text x="{x:.1f}" y="{height - 30}" text-anchor="middle">{label}</text>')
    y = top
    for cfg, bars in rows:
        group_h = max(1, len(bars)) * bar_h
        out.append(
            f'<text x="{left - 10}" y="{y + group_h / 2 + 4:.1f}" text-anchor="end">{esc(cfg.short)}</text>'
        )
        if not bars:
            out.append(f'<text x="{left + 6}" y="{y + 11}" fill="#999">no data</text>')
        for i, (s, med, lo, hi) in enumerate(bars):
            by = y + i * bar_h
            x0, x1 = x_of(2.0 ** lo_exp), x_of(med)
            out.append(
                f'<rect x="{x0:.1f}" y="{by + 1}" width="{max(1.0, x1 - x0):.1f}" height="{bar_h - 2}" '
                f'fill="{COLORS.get(s, "#999")}"><title>{esc(LABELS.get(s, s))}: {med:.2f}×</title></rect>'
            )
            out.append(
                f'<line x1="{x_of(lo):.1f}" y1="{by + bar_h / 2}" x2="{x_of(hi):.1f}" y2="{by + bar_h / 2}" '
                'stroke="black" stroke-width="1"/>'
            )
            tx = max(x1, x_of(hi)) + 4
            out.append(f'<text x="{tx:.1f}" y="{by + bar_h - 3}" font-size="10">{med:.2f}×</text>')
        y += group_h + gap
    # legend
    lx = left
    for s in others:
        out.append(f'<rect x="{lx}" y="{height - 18}" width="12" height="12" fill="{COLORS.get(s, "#999")}"/>')
        out.append(f'<text x="{lx + 16}" y="{height - 8}">{esc(LABELS.get(s, s))}</text>')
        lx += 130
    out.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


def write_report(path, configs, servers, results, notes, info, params):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    json_path = os.path.join(os.path.dirname(os.path.abspath(path)), "benchmarks.json")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(
            {
                "configs": [c.key for c in configs],
                "servers": servers,
                "results": results,
                "notes": notes,
                "info": info,
                "params": params,
            },
            f,
            indent=1,
        )
        f.write("\n")
    svg_name = "benchmarks.svg"
    svg_path = os.path.join(os.path.dirname(os.path.abspath(path)), svg_name)
    write_svg(svg_path, configs, servers, results)
    kept = read_kept_section(path)

    L = []
    L.append("# Twine benchmarks")
    L.append("")
    L.append(
        "Generated by `Benchmarks/run.py` — do not edit above the last section; "
        f"everything under `{KEEP_HEADER}` is kept when the file is regenerated."
    )
    L.append("")
    L.append(
        f"{params['mode']}: {params['rounds']} round(s), warm-up {params['warmup']:g} s, "
        f"measured {params['duration']:g} s per run; servers interleaved round by round "
        f"({' '.join(servers)}), a fresh server process per measurement; took {params['elapsed'] / 60:.1f} min."
    )
    L.append("")
    L.append(
        "**Primary figure: server CPU time per request** (all server threads' on-CPU time from "
        "`/proc/PID/task/*/schedstat` over the measured period, divided by the requests completed). "
        "Beside it: requests/s and p99 latency. Every cell is the median over the rounds with min–max in "
        "parentheses; `×` is the median over the rounds of the ratio to the plain epoll server's run of the "
        "same round (in the summary with the min–max of those ratios in brackets). Every echoed "
        "byte is verified by the load generator."
    )
    L.append("")
    L.append("## Machine")
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    for k, v in info.items():
        L.append(f"| {k} | {v} |")
    if params.get("background") is not None:
        L.append(f"| background CPU load before the run | {params['background']:.0f}% of all CPUs |")
    L.append("")
    if params.get("background") is not None and params["background"] > 10:
        L.append(
            f"> ⚠ Something else was using {params['background']:.0f}% of the CPUs when the run started: "
            "absolute numbers are disturbed; the ratios to epoll (measured interleaved) less so."
        )
        L.append("")

    # summary matrix
    L.append("## Summary: server CPU per request, × plain epoll")
    L.append("")
    L.append(f"![server CPU per request relative to epoll]({svg_name})")
    L.append("")
    head = "| configuration | " + " | ".join(LABELS[s] for s in servers) + " |"
    L.append(head)
    L.append("|---" * (len(servers) + 1) + "|")
    for cfg in configs:
        key_metric = "rss_per_conn_bytes" if cfg.kind == "idle" else "server_cpu_per_req_us"
        unit = "B/conn" if cfg.kind == "idle" else "µs"
        base_runs = results.get(cfg.key, {}).get(cfg.base, [])
        row = [cfg.title]
        for s in servers:
            runs = results.get(cfg.key, {}).get(s, [])
            summ = summarize([metric(r, key_metric) for r in runs])
            if summ is None:
                row.append("–")
            elif s == cfg.base:
                row.append(f"{fmt_num(summ[0])} {unit}")
            else:
                row.append(f"{ratio(round_ratios(runs, base_runs, key_metric), True)}, {fmt_num(summ[0])} {unit}")
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append(
        "For the idle row the figure is server RSS growth per connection instead of CPU. The TLS rows compare "
        "with the hand-written epoll + OpenSSL echo (`Benchmarks/c/tls_epoll_server.c`: SSL_read/SSL_write "
        "on the socket, read-ahead, 64 KiB buffers); libevent C there uses OpenSSL bufferevents "
        "(`Benchmarks/c/libevent_tls_server.c`). The load generator speaks TLS through OpenSSL and verifies the "
        "decrypted echo; the handshake row counts connections with a full handshake (no resumption), our "
        "close_notify and the server's end of stream."
    )
    L.append("")

    # per configuration
    for cfg in configs:
        L.append(f"## {cfg.title}")
        L.append("")
        L.append(f"`loadgen {' '.join(cfg.args)}`" + (" (server in hello mode)" if cfg.server_mode == "hello" else ""))
        L.append("")
        per = results.get(cfg.key, {})
        if cfg.kind == "idle":
            L.append("| server | RSS per connection, bytes | × epoll | RSS baseline KiB | RSS with all up KiB | runs |")
            L.append("|---|---|---|---|---|---|")
            base_runs = per.get("epoll", [])
            for s in servers:
                runs = per.get(s, [])
                if not runs:
                    L.append(f"| {LABELS[s]} | – | – | – | – | 0 |")
                    continue
                rpc = summarize([metric(r, "rss_per_conn_bytes") for r in runs])
                L.append(
                    f"| {LABELS[s]} | {cell(rpc)} | {ratio(round_ratios(runs, base_runs, 'rss_per_conn_bytes'))} | "
                    f"{cell(summarize([metric(r, 'server_rss_base_kb') for r in runs]))} | "
                    f"{cell(summarize([metric(r, 'server_rss_kb') for r in runs]))} | {len(runs)} |"
                )
            L.append("")
            continue
        rate_key, rate_name = ("mbps", "MB/s") if cfg.kind == "stream" else (
            ("rps", "conn/s") if cfg.kind == "connect" else ("rps", "req/s")
        )
        vs = "× " + BASE_NAMES.get(cfg.base, cfg.base)
        L.append(
            f"| server | CPU/req µs | {vs} | {rate_name} | {vs} | p99 µs | {vs} | "
            "server CPU % | loadgen CPU % | runs |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        base_runs = per.get(cfg.base, [])
        for s in servers:
            runs = per.get(s, [])
            if cfg.server_mode == "tls-echo" and s not in TLS_SERVERS:
                continue
            if not runs:
                L.append(f"| {LABELS[s]} | – | – | – | – | – | – | – | – | 0 |")
                continue
            cpu = summarize([metric(r, "server_cpu_per_req_us") for r in runs])
            rate = summarize([metric(r, rate_key) for r in runs])
            p99 = summarize([metric(r, "p99_us") for r in runs])
            scpu = summarize([metric(r, "server_cpu_pct") for r in runs])
            lcpu = summarize([metric(r, "client_cpu_pct") for r in runs])
            flag = ""
            if lcpu and lcpu[2] >= SATURATED_PCT:
                flag = " ⚠ saturated"
            errs = sum(int(r.get("errors") or 0) for r in runs)
            noisy = sum(1 for r in runs if r.get("noisy"))
            nruns = f"{len(runs)} ({noisy} disturbed)" if noisy else str(len(runs))
            err_note = f" ⚠ {errs} errors" if errs else ""
            L.append(
                f"| {LABELS[s]}{err_note} | {cell(cpu)} | "
                f"{ratio(round_ratios(runs, base_runs, 'server_cpu_per_req_us'))} | "
                f"{cell(rate)} | {ratio(round_ratios(runs, base_runs, rate_key))} | "
                f"{cell(p99)} | {ratio(round_ratios(runs, base_runs, 'p99_us'))} | "
                f"{cell(scpu)} | {cell(lcpu)}{flag} | {nruns} |"
            )
        L.append("")

    L += embedding_section(results)

    if notes:
        L.append("## Notes from this run")
        L.append("")
        for n in notes:
            L.append(f"- {n}")
        L.append("")

    L.append("## How to read and reproduce")
    L.append("")
    L.append(
        "- `make -C Benchmarks bench TWINE=/abs/path/to/twine` (full) or `bench-quick`; "
        "`make -C Benchmarks smoke` is the CI check."
    )
    L.append(
        "- Loopback TCP on a small VM: much of each request's cost is the kernel's, and it is shared "
        "between the two processes; compare ratios, not absolute numbers across machines."
    )
    L.append(
        "- `server CPU %` below ~90 with `loadgen CPU %` also well below 100 means the run was bound by "
        "wake-up latency between the two CPUs, not by either process; CPU per request is still comparable."
    )
    L.append(
        "- Every comparison server sets TCP_NODELAY on accepted connections and listens with a backlog "
        "of 4096 (the C servers, NIO explicitly, Twisted via `setTcpNoDelay`); Twine is run as it is."
    )
    L.append(
        f"- A run during which other processes used more than {NOISY_PCT:.0f}% of a CPU (from `/proc/stat`) "
        f"is repeated, up to {RETRIES} times; `disturbed` counts runs kept anyway."
    )
    L.append(
        f"- `⚠ saturated`: the load generator used ≥ {SATURATED_PCT:.0f}% of its CPU in some round, so the "
        "server may not have been driven as hard as it could take. The load generator makes the same system "
        "calls per request as the epoll floor (one write, one read) and loopback TCP costs the same on both "
        "sides, so against the floor, and against anything as cheap, both sides run near 100%: those servers' "
        "rates are bounded by the load generator; their CPU per request, measured while they are busy too, "
        "is not. Differences of about ±10% between rounds are the VM's noise (see the min–max)."
    )
    L.append(
        f"- Raw per-run results: `{os.path.basename(json_path)}` beside this file; "
        f"`python3 Benchmarks/run.py --from-json {os.path.basename(json_path)} --out ...` redraws this report."
    )
    L.append("")
    if kept is None:
        kept = (
            KEEP_HEADER
            + "\n\n<!-- Notes written here (e.g. which Twine change moved which number) are kept by run.py "
            "when it regenerates this file. -->\n"
        )
    text = "\n".join(L) + "\n" + kept
    if not text.endswith("\n"):
        text += "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return svg_path


def embedding_ratio(results):
    """C echo CPU/request ÷ Twine echo CPU/request in the C host, per round (median, min, max), or None."""
    per = results.get(EMBED.key, {})
    return round_ratios(per.get("chost-c", []), per.get("chost-twine", []), "server_cpu_per_req_us")


def embedding_section(results):
    per = results.get(EMBED.key)
    if not per:
        return []
    L = ["## Embedding in a C host", ""]
    L.append(
        "The example C host (`Examples/c-host/host.c`) owns its `event_base` and loop; on one port it serves "
        "either Twine's counting echo through the C API (`twine_listen`) or a plain C bufferevent echo "
        "(`--c-echo`, as `c/libevent_server.c` writes it). Same process, same loop, same timer beside it. "
        f"`C ÷ Twine` is the C echo's server CPU per request divided by Twine's, per round (median, min–max): "
        f"≥ {EMBED_TARGET} means embedding Twine costs at most about {round((1 / EMBED_TARGET - 1) * 100)}% over "
        "hand-written C on the same loop."
    )
    L.append("")
    L.append(f"`loadgen {' '.join(EMBED.args)}`")
    L.append("")
    L.append(
        "| configuration | C bufferevent echo CPU/req µs | Twine echo CPU/req µs | C ÷ Twine | target | "
        "C req/s | Twine req/s | runs |"
    )
    L.append("|---|---|---|---|---|---|---|---|")
    c, t = per.get("chost-c", []), per.get("chost-twine", [])
    rs = embedding_ratio(results)
    verdict = "–" if rs is None else ("met" if rs[0] >= EMBED_TARGET else "**not met**")
    L.append(
        f"| {EMBED.title} | {cell(summarize([metric(r, 'server_cpu_per_req_us') for r in c]))} | "
        f"{cell(summarize([metric(r, 'server_cpu_per_req_us') for r in t]))} | {ratio(rs, True)} | "
        f"≥ {EMBED_TARGET} ({verdict}) | {cell(summarize([metric(r, 'rps') for r in c]))} | "
        f"{cell(summarize([metric(r, 'rps') for r in t]))} | {min(len(c), len(t))} |"
    )
    tc = per.get("chost-twine-c", [])
    if tc:
        rc = round_ratios(c, tc, "server_cpu_per_req_us")
        L.append(
            f"| the same, echo written in C on Twine (`twine_factory_new_callbacks`) | "
            f"{cell(summarize([metric(r, 'server_cpu_per_req_us') for r in c]))} | "
            f"{cell(summarize([metric(r, 'server_cpu_per_req_us') for r in tc]))} | {ratio(rc, True)} | – | "
            f"{cell(summarize([metric(r, 'rps') for r in c]))} | {cell(summarize([metric(r, 'rps') for r in tc]))} | "
            f"{min(len(c), len(tc))} |"
        )
    L.append("")
    return L


def measure_embedding(results, rounds, warmup, duration, notes):
    """The embedding row: the two C host modes interleaved, `rounds` times."""
    results[EMBED.key] = {s: [] for s in EMBED_SERVERS}
    for rnd in range(rounds):
        for s in EMBED_SERVERS:
            res, note = measure(s, EMBED, None, warmup, duration)
            if res is not None and res.get("requests", 0) > 0:
                res["round"] = rnd + 1
                results[EMBED.key][s].append(res)
            line = f"[embedding] round {rnd + 1} {s:12s}"
            if res is not None:
                line += f" {res.get('server_cpu_per_req_us', -1):9.3f} us/req {res.get('rps', 0):10.0f}/s"
            if note:
                line += f"  !! {note}"
                notes.append(f"round {rnd + 1}, {EMBED.title}, {LABELS[s]}: {note}")
            print(line, flush=True)
    rs = embedding_ratio(results)
    if rs:
        print(f"embedding: C echo ÷ Twine echo CPU per request = {ratio(rs, True)} (target ≥ {EMBED_TARGET})", flush=True)
    per = results[EMBED.key]
    rc = round_ratios(per.get("chost-c", []), per.get("chost-twine-c", []), "server_cpu_per_req_us")
    if rc:
        print(f"embedding: C echo ÷ C-callback echo on Twine CPU per request = {ratio(rc, True)}", flush=True)


# --------------------------------------------------------------------------
# bench


def redraw(args):
    with open(args.from_json, encoding="utf-8") as f:
        data = json.load(f)
    configs = [c for key in data["configs"] for c in FULL_CONFIGS if c.key == key]
    out = os.path.abspath(args.out)
    svg = write_report(out, configs, data["servers"], data["results"], data["notes"], data["info"], data["params"])
    print(f"wrote {out} and {svg}")
    return 0


def bench(args):
    t_begin = time.monotonic()
    twine = os.path.abspath(args.twine) if args.twine else None
    if args.only_threads:
        if not twine:
            sys.exit("run.py: --only-threads needs --twine")
        threads_section(twine, args.rounds or (1 if args.quick else 5), quick=args.quick)
        return 0
    if args.only_embedding:
        if server_argv("chost-twine", "echo", None)[0] is None:
            sys.exit("run.py: --only-embedding needs --c-host PATH (make c-host)")
        warmup, duration = (0.3, 1.0) if args.quick else (0.5, 2.0)
        measure_embedding({}, args.rounds or (1 if args.quick else 5), warmup, duration, [])
        return 0
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in wanted:
        if s not in ALL_SERVERS:
            sys.exit(f"run.py: unknown server {s!r} (known: {', '.join(ALL_SERVERS)})")
    if not os.access(LOADGEN, os.X_OK):
        sys.exit(f"run.py: {LOADGEN} not built (make -C Benchmarks c)")
    notes = []
    servers = []
    for s in ALL_SERVERS:
        if s not in wanted:
            continue
        argv, why = server_argv(s, "echo", twine)
        if argv is None:
            notes.append(f"{LABELS[s]} skipped: {why}")
            print(f"skip {s}: {why}", flush=True)
        else:
            servers.append(s)
    if not servers:
        sys.exit("run.py: no server available")
    if args.quick:
        configs = [c for c in FULL_CONFIGS if c.key in QUICK_KEYS]
        rounds = args.rounds or 1
        warmup, duration = 0.3, 1.0
        RETRY_BUDGET["s"] = 20.0
    else:
        configs = FULL_CONFIGS
        rounds = args.rounds or 5
        warmup, duration = 0.5, 2.0
    if args.configs:
        keys = args.configs.split(",")
        configs = [c for c in FULL_CONFIGS if c.key in keys]
    background = background_load()
    if background is not None and background > 10:
        print(f"warning: {background:.0f}% of the CPUs busy before starting", flush=True)
    info = machine_info(twine)
    results = {c.key: {s: [] for s in servers} for c in configs}
    total = rounds * sum(1 for c in configs for s in servers if c.server_mode != "tls-echo" or s in TLS_SERVERS)
    n = 0
    for rnd in range(rounds):
        for cfg in configs:
            for s in servers:
                if cfg.server_mode == "tls-echo" and s not in TLS_SERVERS:
                    continue  # no TLS echo for this server: the row compares libevent C and Twine
                n += 1
                res, note = measure(s, cfg, twine, warmup, duration)
                if res is not None and res.get("requests", 0) > 0:
                    res["round"] = rnd + 1
                    results[cfg.key][s].append(res)
                line = f"[{n}/{total}] round {rnd + 1} {cfg.key:15s} {s:9s}"
                if res is not None:
                    if cfg.kind == "idle":
                        line += f" {res.get('rss_per_conn_bytes', -1):8.0f} B/conn"
                    else:
                        line += (
                            f" {res.get('server_cpu_per_req_us', -1):9.3f} us/req {res.get('rps', 0):10.0f}/s"
                            f" p99 {res.get('p99_us', 0):8.0f} us  loadgen {res.get('client_cpu_pct', 0):3.0f}%"
                            f" server {res.get('server_cpu_pct', 0):3.0f}% other {res.get('other_cpu_pct', 0):3.0f}%"
                        )
                if note:
                    line += f"  !! {note}"
                    notes.append(f"round {rnd + 1}, {cfg.title}, {LABELS[s]}: {note}")
                print(line, flush=True)
    if server_argv("chost-twine", "echo", None)[0] is not None:
        measure_embedding(results, rounds, warmup, duration, notes)
    else:
        notes.append(f"{EMBED.title} skipped: {server_argv('chost-twine', 'echo', None)[1]}")
    elapsed = time.monotonic() - t_begin
    params = {
        "mode": "Quick run (--quick)" if args.quick else "Full run",
        "rounds": rounds,
        "warmup": warmup,
        "duration": duration,
        "elapsed": elapsed,
        "background": background,
    }
    out = os.path.abspath(args.out)
    svg = write_report(out, configs, servers, results, notes, info, params)
    print(f"wrote {out} and {svg} in {elapsed / 60:.1f} min", flush=True)
    # ratio table on the terminal
    print("\nserver CPU per request × epoll (the TLS rows: × epoll + OpenSSL; median of per-round ratios):")
    print(f"{'configuration':18s}" + "".join(f"{s:>10s}" for s in servers))
    for cfg in configs:
        k = "rss_per_conn_bytes" if cfg.kind == "idle" else "server_cpu_per_req_us"
        row = f"{cfg.key:18s}"
        for s in servers:
            rs = round_ratios(results[cfg.key][s], results[cfg.key].get(cfg.base, []), k)
            row += f"{rs[0] if rs else float('nan'):10.2f}"
        print(row)
    if twine and "twine" in servers:
        print("\nthrottling (Twine echo, measured bandwidth / configured rate, target within ±20 %):")
        for label, r, ok, detail in throttle_checks(twine):
            shown = f"{r:.3f}×" if r is not None else "n/a"
            print(f"  {label:40s} {shown:>8s}  {'ok' if ok else 'OUT OF RANGE'}  ({detail})")
            notes.append(f"Throttling, {label}: {shown} of the configured rate ({detail})")
        print("\nTwine echo over a UNIX-domain socket vs over TCP (server CPU per request and req/s, UNIX / TCP):")
        for label, c, r, detail in unix_vs_tcp(twine, rounds=1 if args.quick else 3):
            if c is None:
                print(f"  {label:14s} n/a ({detail})")
                notes.append(f"UNIX vs TCP, {label}: not measured ({detail})")
                continue
            print(f"  {label:14s} CPU/request {c:.2f}×, req/s {r:.2f}×  ({detail})")
            notes.append(f"UNIX vs TCP, {label}: server CPU per request {c:.2f}× TCP's, req/s {r:.2f}× ({detail})")
        if any(c.server_mode == "tls-echo" for c in configs):
            print("\nserver syscalls per request on the TLS rows (perf tracepoints):")
            for line in syscall_lines(syscall_counts(twine, [s for s in servers if s in TLS_SERVERS])):
                print("  " + line)
                notes.append("Syscalls, " + line)
        notes += threads_section(twine, 1 if args.quick else 3, quick=args.quick)
        write_report(out, configs, servers, results, notes, info, params)
    return 0


# --------------------------------------------------------------------------
# throttling: measured bandwidth against the configured rate (issue 4)

THROTTLE_CASES = [
    # (label, twine flags, loadgen connections, configured bytes/s seen by the loadgen)
    ("1 conn, --rate-limit 1 MiB/s", ["--rate-limit", str(1 << 20)], 1, 1 << 20),
    ("4 conns, --total-rate-limit 2 MiB/s", ["--total-rate-limit", str(2 << 20)], 4, 2 << 20),
]
THROTTLE_TOLERANCE = 0.20


def throttle_checks(twine, duration=3.0):
    """Runs Twine's echo with each rate limit; returns [(label, measured/configured, ok, detail)]."""
    out = []
    for label, flags, conns, rate in THROTTLE_CASES:
        argv = [twine, "echo", "--port", "0", "--max-connections", "1000"] + flags
        server = Server(argv, "twine")
        try:
            server.start(timeout=20)
            la = ["echo", "--conns", str(conns), "--size", "4096", "--depth", "4",
                  "--duration", str(duration), "--warmup", "1"]
            rc, res, err = run_loadgen(la, server, duration + 30)
            if res is None or rc != 0:
                out.append((label, None, False, f"loadgen exit {rc}: {err[-200:]}"))
                continue
            measured = res["mbps"] * 1e6
            r = measured / rate
            out.append((label, r, abs(r - 1) <= THROTTLE_TOLERANCE,
                        f"{measured / 1048576:.3f} MiB/s measured, {rate / 1048576:.3f} MiB/s configured"))
        except RuntimeError as e:
            out.append((label, None, False, str(e)))
        finally:
            server.stop()
    return out


# --------------------------------------------------------------------------
# UNIX-domain vs TCP: the same Twine echo over both (issue 6)

UNIX_CONFIGS = [
    ("100 × 64 B", ["echo", "--conns", "100", "--size", "64"]),
    ("100 × 4 KiB", ["echo", "--conns", "100", "--size", "4096"]),
]


def unix_vs_tcp(twine, rounds=3, warmup=0.5, duration=2.0):
    """Twine echo over a UNIX socket and over TCP, interleaved; returns
    [(label, cpu ratio unix/tcp, rps ratio unix/tcp, detail)] (medians over rounds)."""
    out = []
    folder = tempfile.mkdtemp(prefix="twine-bench-")
    path = os.path.join(folder, "echo.sock")
    try:
        for label, la in UNIX_CONFIGS:
            cpu, rps = [], []
            for _ in range(rounds):
                got = {}
                for kind in ("tcp", "unix"):
                    where = ["--unix", path] if kind == "unix" else ["--port", "0"]
                    server = Server([twine, "echo", "--max-connections", "1000000"] + where, f"twine {kind}")
                    try:
                        server.start(timeout=20)
                        rc, res, err = run_loadgen(la + ["--warmup", str(warmup), "--duration", str(duration)], server,
                                                   duration + warmup + 30)
                        if rc == 0 and res and res.get("server_cpu_per_req_us", -1) > 0:
                            got[kind] = res
                    except RuntimeError:
                        pass
                    finally:
                        server.stop()
                if len(got) == 2:
                    cpu.append(got["unix"]["server_cpu_per_req_us"] / got["tcp"]["server_cpu_per_req_us"])
                    rps.append(got["unix"]["rps"] / got["tcp"]["rps"])
            if cpu:
                out.append((label, statistics.median(cpu), statistics.median(rps),
                            f"{len(cpu)} rounds, CPU/request range {min(cpu):.2f}-{max(cpu):.2f}"))
            else:
                out.append((label, None, None, "no complete round"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out


# --------------------------------------------------------------------------
# every core (issue 12): twine echo --threads 2 beside --threads 1 and plain epoll, and the
# spread of accepted connections over the reactors

THREADS_CONFIGS = [
    ("echo 100 × 64 B", ["echo", "--conns", "100", "--size", "64"]),
    ("echo 100 × 4 KiB", ["echo", "--conns", "100", "--size", "4096"]),
]
THREADS_TARGET = 1.05  # server CPU per request, --threads 2 / --threads 1
BALANCE_TARGET = 0.10  # each reactor within ±10 % of the mean


def threads_rows(twine, rounds=5, warmup=0.5, duration=2.0):
    """Server CPU per request of epoll, twine --threads 1 and twine --threads 2, interleaved
    per round (the server pinned to one CPU as in every row, the load generator to the other).
    Returns [(label, {server: [us/req per round]}, [threads2/threads1 per round])]."""
    out = []
    epoll = os.path.join(BIN, "epoll_server")
    for label, la in THREADS_CONFIGS:
        per = {"epoll": [], "threads1": [], "threads2": []}
        ratios = []
        for _ in range(rounds):
            got = {}
            for kind in ("epoll", "threads1", "threads2"):
                if kind == "epoll":
                    argv = [epoll, "echo", "--port", "0"]
                else:
                    argv = [twine, "echo", "--port", "0", "--max-connections", "1000000", "--threads", kind[-1]]
                server = Server(argv, kind)
                try:
                    server.start(timeout=20)
                    rc, res, err = run_loadgen(la + ["--warmup", str(warmup), "--duration", str(duration)], server,
                                               duration + warmup + 30)
                    if rc == 0 and res and res.get("server_cpu_per_req_us", -1) > 0:
                        got[kind] = res["server_cpu_per_req_us"]
                        per[kind].append(res["server_cpu_per_req_us"])
                except RuntimeError:
                    pass
                finally:
                    server.stop()
            if "threads1" in got and "threads2" in got:
                ratios.append(got["threads2"] / got["threads1"])
        out.append((label, per, ratios))
    return out


def accept_balance(twine, threads=2, connections=10000, inflight=50):
    """Runs `twine hello --threads N` until the load generator made at least `connections`
    connections (connect + greeting + close), then reads the stopped line's
    acceptedPerReactor. Returns (per-reactor counts, worst deviation from the mean) or (None, why)."""
    server = Server([twine, "hello", "--port", "0", "--threads", str(threads)], f"twine hello --threads {threads}")
    try:
        server.start(timeout=20)
        made = 0
        for _ in range(20):
            rc, res, err = run_loadgen(["connect", "--inflight", str(inflight), "--warmup", "0", "--duration", "1",
                                        ], server, 60)
            if rc != 0 or not res:
                return None, f"loadgen failed (exit {rc}): {err[-200:]}"
            made += int(res.get("requests", 0))
            if made >= connections:
                break
        stop_process(server.proc)
        server.err.seek(0)
        text = server.err.read().decode(errors="replace")
    except RuntimeError as e:
        return None, str(e)
    finally:
        server.stop()
    m = re.search(r"acceptedPerReactor=(\S+)", text)
    if not m:
        return None, f"no acceptedPerReactor in the stopped line: {text[-300:]}"
    counts = [int(x) for x in m.group(1).split(",")]
    mean = sum(counts) / len(counts)
    worst = max(abs(c - mean) / mean for c in counts) if mean else float("inf")
    return counts, worst


def threads_section(twine, rounds, quick=False):
    """Measures the every-core rows, prints them and returns report notes."""
    notes = []
    warmup, duration = (0.3, 1.0) if quick else (0.5, 2.0)
    print("\nevery core: server CPU per request, twine echo --threads 2 vs --threads 1 vs epoll "
          f"(target threads2/threads1 <= {THREADS_TARGET}x; median of {rounds} interleaved rounds):")
    for label, per, ratios in threads_rows(twine, rounds, warmup, duration):
        def med(xs):
            return f"{statistics.median(xs):.3f}" if xs else "n/a"
        def span(xs):
            return f"{min(xs):.3f}-{max(xs):.3f}" if xs else "n/a"
        r = statistics.median(ratios) if ratios else None
        verdict = "n/a" if r is None else ("ok" if r <= THREADS_TARGET else "OVER TARGET")
        line = (f"{label}: epoll {med(per['epoll'])} us/req ({span(per['epoll'])}), --threads 1 "
                f"{med(per['threads1'])} ({span(per['threads1'])}), --threads 2 {med(per['threads2'])} "
                f"({span(per['threads2'])}); threads2/threads1 {('%.3f' % r) if r else 'n/a'}x "
                f"(range {span(ratios)}) {verdict}")
        print("  " + line)
        notes.append("Every core, " + line)
    for threads in (2, 4):
        counts, worst = accept_balance(twine, threads=threads)
        if counts is None:
            line = f"accept balance over {threads} reactors: not measured ({worst})"
        else:
            verdict = "ok" if worst <= BALANCE_TARGET else "OUT OF RANGE"
            line = (f"accept balance over {threads} reactors (SO_REUSEPORT), {sum(counts)} connections: "
                    f"{counts}, worst {worst * 100:.1f}% from the mean (target ±{BALANCE_TARGET * 100:.0f}%) {verdict}")
        print("  " + line)
        notes.append("Every core, " + line)
    return notes


# --------------------------------------------------------------------------
# smoke


def smoke(args):
    t_begin = time.monotonic()
    passed, failed, skipped = [], [], []

    def check(name, ok, detail=""):
        (passed if ok else failed).append(name)
        print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)

    if not os.access(LOADGEN, os.X_OK):
        check("loadgen built", False, f"{LOADGEN} missing (make -C Benchmarks c)")
        print(f"{len(passed)} passed, {len(failed)} failed")
        return 1

    twine = os.path.abspath(args.twine) if args.twine else None
    names = ["epoll", "libevent"]
    if twine:
        names.append("twine")
    for opt in ("nio", "twisted"):
        if server_argv(opt, "echo", twine)[0] is not None:
            names.append(opt)  # only when already built: the smoke builds nothing
        else:
            skipped.append(opt)

    short = ["--warmup", "0.1", "--duration", "0.5", "--connect-timeout", "10"]
    echo_runs = [
        ("echo 4x64B", ["echo", "--conns", "4", "--size", "64"] + short),
        ("echo 4x4KiB", ["echo", "--conns", "4", "--size", "4096"] + short),
        ("echo 4x64KiB", ["echo", "--conns", "4", "--size", "65536"] + short),
        ("echo 4x100KB unaligned", ["echo", "--conns", "4", "--size", "100003"] + short),
        ("pipelined 4x64Bx16", ["echo", "--conns", "4", "--size", "64", "--depth", "16"] + short),
        ("stream 2 conns", ["stream", "--conns", "2"] + short),
        ("idle 200 conns", ["idle", "--conns", "200", "--hold", "0.1", "--connect-timeout", "10"]),
    ]

    def loadgen_ok(label, server, la, want_rate=True):
        rc, res, err = run_loadgen(la, server, 40)
        if res is None:
            check(label, False, f"no RESULT (exit {rc}): {err[-300:]}")
            return
        rate = res.get("rps", 0)
        ok = rc == 0 and res.get("errors") == 0 and (rate > 0 or not want_rate) and res.get("requests", 0) > 0
        detail = f"{rate:.0f}/s, {res.get('errors')} errors"
        if not ok:
            detail += f" {res.get('error_kinds')} exit {rc} {err[-300:]}"
        check(label, ok, detail)

    for name in names:
        for mode in ("echo", "hello") + (("tls-echo",) if name in TLS_SERVERS else ()):
            argv, why = server_argv(name, mode, twine)
            if argv is None:
                check(f"{name} {mode}: server available", False, why)
                continue
            server = Server(argv, name)
            try:
                try:
                    server.start(timeout=20)
                except RuntimeError as e:
                    check(f"{name} {mode}: server starts", False, str(e))
                    continue
                if mode == "echo":
                    for label, la in echo_runs:
                        loadgen_ok(f"{name} {label}", server, la, want_rate=not la[0] == "idle")
                elif mode == "tls-echo":
                    for label, size in (("4x4KiB", "4096"), ("4x100KB unaligned", "100003")):
                        loadgen_ok(f"{name} TLS echo {label}", server, ["echo", "--conns", "4", "--size", size, "--tls", "1"] + short)
                    loadgen_ok(f"{name} TLS handshakes 4 in flight", server, ["connect", "--inflight", "4", "--tls", "1"] + short)
                else:
                    loadgen_ok(
                        f"{name} connect/greeting 8 in flight",
                        server,
                        ["connect", "--inflight", "8", "--expect", GREETING.replace("\r", "\\r").replace("\n", "\\n")]
                        + short,
                    )
                check(f"{name} {mode}: server still running", server.alive(), "" if server.alive() else server.stderr_tail())
            finally:
                server.stop()

    if twine and os.access(twine, os.X_OK):
        for label, c, r, detail in unix_vs_tcp(twine, rounds=1, warmup=0.2, duration=0.5):
            check(f"twine echo over UNIX and TCP, {label}", c is not None, detail)
        for label, r, ok, detail in throttle_checks(twine, duration=2.0):
            check(f"twine throttling {label} within ±20 %", ok, f"{r:.3f}× ({detail})" if r is not None else detail)

    # the byte check must catch a corrupting server
    corrupt = os.path.join(BIN, "corrupt_server")
    if not os.access(corrupt, os.X_OK):
        check("corrupt_server built", False, f"{repo_path(corrupt)} missing (make c)")
    else:
        for label, la in (
            ("64B", ["echo", "--conns", "4", "--size", "64"]),
            ("64KiB", ["echo", "--conns", "4", "--size", "65536"]),
        ):
            server = Server([corrupt, "corrupt", "--port", "0", "--every", "10000"], "corrupt_server")
            try:
                server.start(timeout=10)
                rc, res, err = run_loadgen(la + short, server, 40)
                caught = rc not in (0, None) and res is not None and res.get("error_kinds", {}).get("mismatch", 0) > 0
                check(
                    f"loadgen catches corruption ({label})",
                    caught,
                    f"exit {rc}, {res.get('error_kinds') if res else 'no RESULT'}",
                )
            except RuntimeError as e:
                check(f"loadgen catches corruption ({label})", False, str(e))
            finally:
                server.stop()

    # the C host (embedding row): both of its echo modes
    if C_HOST["path"]:
        for name in EMBED_SERVERS:
            server = Server(server_argv(name, "echo", None)[0] or ["false"], name)
            try:
                server.start(timeout=20)
                for label, la in echo_runs[:3]:
                    loadgen_ok(f"{name} {label}", server, la)
                check(f"{name}: server still running", server.alive(), "" if server.alive() else server.stderr_tail())
            except RuntimeError as e:
                check(f"{name}: server starts", False, str(e))
            finally:
                server.stop()
    else:
        skipped.append("C host (no --c-host)")

    if skipped:
        print(f"not in this smoke (not built): {', '.join(skipped)}")
    print(f"smoke took {time.monotonic() - t_begin:.1f} s")
    print(f"{len(passed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# syscalls per request on the TLS rows (issue 14): perf's syscall tracepoints, counted
# on the server for a window inside the load generator's measured period

SYSCALL_EVENTS = ["read", "write", "epoll_wait", "epoll_ctl", "ioctl", "recvfrom", "sendto", "readv", "writev"]


def syscall_counts(twine, servers=TLS_SERVERS, window=1.5):
    """[(config key, server, total per request, {syscall: per request}, note)] for the TLS echo rows."""
    perf = shutil.which("perf")
    rows = []
    events = ["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{n}" for n in SYSCALL_EVENTS]
    for cfg in [c for c in FULL_CONFIGS if c.server_mode == "tls-echo" and c.kind == "echo"]:
        for name in servers:
            argv, why = server_argv(name, cfg.server_mode, twine)
            if argv is None or not perf:
                rows.append((cfg.key, name, None, {}, why or "no perf"))
                continue
            server = Server(argv, name)
            try:
                server.start()
                where = ["--host", server.host, "--port", str(server.port), "--server-pid", str(server.proc.pid)]
                gen = subprocess.Popen(
                    pin(1) + [LOADGEN] + cfg.args + ["--warmup", "0.5", "--duration", str(window + 1.0)] + where,
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=HERE,
                )
                LIVE.append(gen)
                time.sleep(1.0)
                written0, t0 = proc_written(server.proc.pid), time.monotonic()
                counted = subprocess.run(
                    [perf, "stat", "-x,", "-e", ",".join(events), "-p", str(server.proc.pid), "--", "sleep", str(window)],
                    capture_output=True, text=True, timeout=30,
                )
                written1, t1 = proc_written(server.proc.pid), time.monotonic()
                out, _ = gen.communicate(timeout=60)
                LIVE.remove(gen)
                res = None
                for line in out.decode(errors="replace").splitlines():
                    if line.startswith("RESULT "):
                        res = json.loads(line[len("RESULT "):])
                counts = {}
                for line in counted.stderr.splitlines():
                    parts = line.split(",")
                    if len(parts) > 2 and parts[0].strip().isdigit():
                        counts[parts[2].split(":")[-1].replace("sys_enter_", "")] = int(parts[0])
                # Requests in the window itself: the ciphertext the server wrote (each record adds
                # 22 bytes: header, inner type, tag) over what one echo writes.
                size = int(cfg.args[cfg.args.index("--size") + 1])
                per_request = size + 22 * -(-size // 16384)
                # perf counts for `window` s of the t1 - t0 its start and exit took: scale to that.
                requests = (written1 - written0) / per_request * window / (t1 - t0) if written0 is not None and written1 else 0
                if not requests or "sys_enter" not in counts:
                    rows.append((cfg.key, name, None, {}, f"no count ({counted.stderr.strip()[-200:]})"))
                    continue
                per = {k: v / requests for k, v in counts.items() if k != "sys_enter" and v}
                rows.append((cfg.key, name, counts["sys_enter"] / requests, per, None))
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                rows.append((cfg.key, name, None, {}, str(e)))
            finally:
                server.stop()
    return rows


def proc_written(pid):
    """Bytes `pid` has written through syscalls so far (/proc/PID/io wchar), or None."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def syscall_lines(rows):
    lines = []
    for key, name, total, per, note in rows:
        if total is None:
            lines.append(f"{key}, {LABELS[name]}: not measured ({note})")
        else:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
            lines.append(f"{key}, {LABELS[name]}: {total:.2f} syscalls per request ({parts})")
    return lines


def main():
    p = argparse.ArgumentParser(description="Twine benchmark orchestrator")
    p.add_argument("--twine", help="path to the twine binary")
    p.add_argument(
        "--twine-baseline",
        help="an earlier build's twine binary, measured interleaved with --twine as server twine-base (A/B of a change)",
    )
    p.add_argument("--quick", action="store_true", help="1 round, short runs, fewer configurations (< 2 min)")
    p.add_argument("--rounds", type=int, default=0, help="rounds (default 5, or 1 with --quick)")
    p.add_argument(
        "--servers",
        default=",".join(s for s in ALL_SERVERS if s != "twine-base"),
        help="comma-separated subset of " + ",".join(ALL_SERVERS) + " (twine-base needs --twine-baseline)",
    )
    p.add_argument("--configs", default="", help="comma-separated configuration keys (default: all)")
    p.add_argument("--out", default=os.path.join(HERE, "BENCHMARKS.md"), help="report path (benchmarks.svg goes next to it)")
    p.add_argument("--smoke", action="store_true", help="CI smoke test instead of the benchmark")
    p.add_argument("--from-json", help="redraw the report from a benchmarks.json of an earlier run")
    p.add_argument("--c-host", help="path to the example C host (Examples/c-host), for the embedding row")
    p.add_argument("--only-threads", action="store_true",
                   help="measure only the every-core rows (--threads 2 vs 1 vs epoll, accept balance); no report")
    p.add_argument("--only-embedding", action="store_true", help="measure only the embedding row; no report")
    p.add_argument(
        "--syscalls", action="store_true", help="count only the server syscalls per request on the TLS rows (perf); no report"
    )
    args = p.parse_args()
    C_HOST["path"] = os.path.abspath(args.c_host) if args.c_host else None
    BASELINE["path"] = os.path.abspath(args.twine_baseline) if args.twine_baseline else None
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        if args.from_json:
            return redraw(args)
        if args.syscalls:
            wanted = [s.strip() for s in args.servers.split(",") if s.strip() in TLS_SERVERS]
            for line in syscall_lines(syscall_counts(os.path.abspath(args.twine) if args.twine else None, wanted)):
                print(line, flush=True)
            return 0
        return smoke(args) if args.smoke else bench(args)
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted: stopping servers", file=sys.stderr)
        return 130
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
