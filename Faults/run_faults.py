#!/usr/bin/env python3
"""Fault injection for Twine's servers (issue 11 item 7; `make faults`, `make faults-smoke`).

    python3 Faults/run_faults.py --twine PATH --shim PATH --loadgen PATH [--smoke] [--seed N]
                                 [--only echo,chat,tls] [--extra-faults SPEC] [--echo-argv "CMD ..."]

Starts `twine echo`, `twine chat` and `twine echo --tls-cert/--tls-key` with the LD_PRELOAD
shim (Faults/faultshim.c) failing accept, recv/read/readv, send/write/writev (errors and short
writes), epoll_ctl, libevent's malloc/calloc and SSL_read/SSL_write at seeded rates, drives
each with the load generator (echo, TLS echo: byte-verified) and python clients (echo churn
with resets; a chat room whose every relayed line is checked), then checks, per server:

  - no crash: alive after the load, exit status 0 on SIGTERM, no fatal error on stderr;
  - no hang: a fresh client is served within a bound after the load;
  - no fd leak: /proc/PID/fd back to the count before the load (+- a small slack);
  - RSS back near the level after a warm-up round;
  - every byte correct on the connections that survived (a connection killed by an injected
    error may fail: those are counted apart and accepted; a mismatch never is);
  - exact counters: with --log-level debug every "connection made" has its "connection lost",
    and the `stopped` line's accepted= equals the number made.

Prints the injection table (per call and error, how many injected out of how many calls) and
ends with the line "N passed, N failed"; exits 1 on any failure.  python3 standard library only;
every wait is bounded.  --extra-faults adds rules (e.g. "accept4:LEAKFD:0.2", a planted fd leak
that must make the fd check fail); --echo-argv replaces the echo server (e.g. the benchmark's
corrupt_server, which the byte check must catch).
"""
import argparse
import json
import os
import random
import re
import selectors
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

results = {"passed": 0, "failed": 0}
TABLE = {}  # (call, error) -> [injected, calls]

# Errors every connection may die of (rare); transient ones the server must ride through (often).
FATAL = 0.0003
TRANSIENT = 0.02
SOCKET_RULES = [
    "accept4:EMFILE,ENFILE,ENOBUFS,ECONNABORTED:0.05",
    "accept:EMFILE,ENFILE,ENOBUFS,ECONNABORTED:0.05",
    f"recv:EINTR,EAGAIN:{TRANSIENT}", f"recv:ECONNRESET:{FATAL}",
    f"read:EINTR,EAGAIN:{TRANSIENT}", f"read:ECONNRESET:{FATAL}",
    f"readv:EINTR,EAGAIN:{TRANSIENT}", f"readv:ECONNRESET:{FATAL}",
    f"send:EAGAIN,SHORT:{TRANSIENT}", f"send:EPIPE,ECONNRESET:{FATAL}",
    f"write:EAGAIN,SHORT:{TRANSIENT}", f"write:EPIPE,ECONNRESET:{FATAL}",
    f"writev:EAGAIN,SHORT:{TRANSIENT}", f"writev:EPIPE,ECONNRESET:{FATAL}",
    "epoll_ctl:ENOMEM:0.0005",
    "malloc:NULL:0.0005",
    "calloc:NULL:0.0005",
]
TLS_RULES = ["SSL_read:SSL,SYSCALL:0.0005", "SSL_write:SSL,SYSCALL:0.0005"]
# The TLS echo runs without libevent malloc/calloc failures: libevent 2.1.12's own error path
# in bufferevent_openssl_socket_new frees a half-made bufferevent and crashes (SIGSEGV in
# bufferevent_free called from libevent_openssl, under TLSSession.accepting; seed 44 of the
# smoke run shows it). That is libevent's bug, out of Twine's reach; the plain echo and the
# chat keep those rules.
TLS_SOCKET_RULES = [rule for rule in SOCKET_RULES if not rule.startswith(("malloc:", "calloc:"))]


def rules(base, args):
    """The rules a server runs under. The smoke run (make test) leaves out epoll_ctl ENOMEM:
    libevent 2.1 drops an epoll change that fails (it logs "Epoll MOD ... failed" and goes on),
    so the connection's write interest is silently lost and that connection stalls until a
    timeout ends it; Twine cannot see it happen. The full run keeps it and reports the stalls."""
    chosen = [rule for rule in base if not (args.smoke and rule.startswith("epoll_ctl:"))]
    if args.smoke:
        # Ten TLS connections for a second: at the full run's SSL error rate a round can lose
        # every connection before it echoes once, and then nothing is left to verify.
        chosen = [rule.replace(":0.0005", ":0.0001") if rule.startswith("SSL_") else rule for rule in chosen]
    return chosen + args.extra
FATAL_STDERR = re.compile(r"Fatal error|fatal error|Segmentation|Assertion|assertion failed|AddressSanitizer|"
                          r"Illegal instruction|stack overflow|\[err\]|\[crit\]|\bpanic\b")


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)
    return ok


def note(text):
    print(f"     {text}", flush=True)


def wait_until(cond, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


# --------------------------------------------------------------------------- the server


class Server:
    def __init__(self, name, argv, rules, args):
        self.name = name
        self.workdir = tempfile.mkdtemp(prefix=f"twine-faults-{name}-")
        self.report = os.path.join(self.workdir, "faults.txt")
        self.out = open(os.path.join(self.workdir, "stdout"), "w+b")
        self.err = open(os.path.join(self.workdir, "stderr"), "w+b")
        env = dict(os.environ)
        env.update({
            "LD_PRELOAD": os.path.abspath(args.shim),
            "TWINE_FAULTS": ";".join(rules),
            "TWINE_FAULT_SEED": str(args.seed),
            "TWINE_FAULTS_REPORT": self.report,
        })
        argv = shlex.split(args.wrap) + argv if args.wrap else argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err, env=env)
        self.port = None
        self.failed_before = results["failed"]

    @staticmethod
    def _read(f):
        return os.pread(f.fileno(), os.fstat(f.fileno()).st_size, 0).decode(errors="replace")

    def stdout(self):
        return self._read(self.out)

    def stderr(self):
        return self._read(self.err)

    def wait_listening(self, timeout=30.0):
        def up():
            m = re.search(r"^listening on \S+:(\d+)\s*$", self.stdout(), re.M)
            if m:
                self.port = int(m.group(1))
            return self.port is not None or self.proc.poll() is not None
        wait_until(up, timeout, 0.02)
        return self.port is not None

    def alive(self):
        return self.proc.poll() is None

    def fds(self):
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return -1

    def rss_kb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                m = re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M)
                return int(m.group(1)) if m else -1
        except OSError:
            return -1

    def stop(self, timeout=20.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def injections(self):
        table = []
        try:
            with open(self.report) as f:
                for line in f:
                    if line.startswith("#") or not line.strip():
                        continue
                    call, err, n, calls = line.split()
                    table.append((call, err, int(n), int(calls)))
        except OSError:
            pass
        return table

    def cleanup(self):
        if results["failed"] > self.failed_before:  # keep what the server said, for the report
            kept = os.path.join(tempfile.gettempdir(), f"twine-faults-{self.name}-{self.proc.pid}.stderr")
            shutil.copyfile(self.err.name, kept)
            note(f"{self.name}: server stderr kept in {kept}")
        self.out.close()
        self.err.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


# --------------------------------------------------------------------------- clients


def loadgen(args, port, mode_args, timeout):
    argv = [args.loadgen] + mode_args + ["--host", "127.0.0.1", "--port", str(port), "--connect-timeout", "10"]
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "loadgen did not finish within %.0f s" % timeout
    for line in p.stdout.decode(errors="replace").splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:]), p.stderr.decode(errors="replace")
    return None, f"loadgen exit {p.returncode}, no RESULT: {p.stderr.decode(errors='replace')[-500:]}"


def echo_once(port, payload, timeout=5.0):
    """One fresh client: connect, send, read the echo back. True when every byte came back."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(payload)
            got = b""
            deadline = time.monotonic() + timeout
            while len(got) < len(payload) and time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            return got == payload
    except OSError:
        return False


def served(port, attempts=3, tls_ctx=None):
    """No hang: a fresh client is served (a few tries: the faults are still on, and one
    injected reset may kill a single attempt)."""
    payload = os.urandom(1024)
    for _ in range(attempts):
        if tls_ctx is None:
            if echo_once(port, payload):
                return True
        else:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                    with tls_ctx.wrap_socket(raw, server_hostname="localhost") as s:
                        s.sendall(payload)
                        got = b""
                        while len(got) < len(payload):
                            chunk = s.recv(65536)
                            if not chunk:
                                break
                            got += chunk
                        if got == payload:
                            return True
            except (OSError, ValueError):
                pass
        time.sleep(0.2)
    return False


def echo_churn(port, cycles, rng):
    """connect / echo / close cycles, one in ten ended with a reset (SO_LINGER 0).
    Returns (ok, killed, mismatched)."""
    ok = killed = bad = 0
    for i in range(cycles):
        payload = rng.randbytes(rng.choice((1, 64, 1000, 5000)))
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.settimeout(5)
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            if rng.random() < 0.1:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            if got == payload:
                ok += 1
            elif payload.startswith(got):
                killed += 1  # cut short: an injected error killed it
            else:
                bad += 1
        except OSError:
            killed += 1
    return ok, killed, bad


class ChatUser:
    def __init__(self, nick, port):
        self.nick = nick
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setblocking(False)
        self.inbuf = b""
        self.outbuf = b""
        self.dead = False
        self.renamed = False
        self.seen = {}  # sender -> list of seqs received
        self.bad = []   # malformed or corrupted lines

    def queue(self, line):
        self.outbuf += line.encode() + b"\r\n"


def chat_payload(nick, seq):
    r = random.Random(f"{nick}/{seq}")
    n = r.randint(1, 200)
    return "".join(r.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


def chat_round(port, users_n, lines_n, tag, timeout):
    """users_n users rename to known nicks, each sends lines_n lines; every relayed line is checked
    (sender, order, content). Returns a dict of figures."""
    users = []
    for k in range(users_n):
        try:
            users.append(ChatUser(f"{tag}u{k}", port))
        except OSError:
            pass
    sel = selectors.DefaultSelector()
    for u in users:
        sel.register(u.sock, selectors.EVENT_READ, u)
        u.queue(f"/nick {u.nick}")

    def pump(deadline, until):
        while time.monotonic() < deadline and not until():
            for u in users:
                if u.dead:
                    continue
                want = selectors.EVENT_READ | (selectors.EVENT_WRITE if u.outbuf else 0)
                sel.modify(u.sock, want, u)
            for key, ev in sel.select(timeout=0.05):
                u = key.data
                if u.dead:
                    continue
                try:
                    if ev & selectors.EVENT_WRITE and u.outbuf:
                        n = u.sock.send(u.outbuf)
                        u.outbuf = u.outbuf[n:]
                    if ev & selectors.EVENT_READ:
                        chunk = u.sock.recv(65536)
                        if not chunk:
                            raise ConnectionResetError("EOF")
                        u.inbuf += chunk
                        *lines, u.inbuf = u.inbuf.split(b"\n")
                        for raw in lines:
                            take_line(u, raw.rstrip(b"\r").decode(errors="replace"))
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    u.dead = True
                    sel.unregister(u.sock)
                    u.sock.close()

    def take_line(u, line):
        if line == f"* you are now {u.nick}":
            u.renamed = True
            return
        m = re.match(r"^<(\S+)> (\d+) (.*)$", line)
        if m:
            sender, seq, text = m.group(1), int(m.group(2)), m.group(3)
            got = u.seen.setdefault(sender, [])
            if text != chat_payload(sender, seq) or (got and seq <= got[-1]):
                u.bad.append(line[:120])
            got.append(seq)
        elif line.startswith("<"):
            u.bad.append(line[:120])

    start = time.monotonic()
    pump(start + timeout / 3, lambda: all(u.renamed or u.dead for u in users))
    talkers = [u for u in users if u.renamed and not u.dead]
    for u in talkers:
        for seq in range(lines_n):
            u.queue(f"{seq} {chat_payload(u.nick, seq)}")

    def complete():
        live = [u for u in talkers if not u.dead]
        return all(not u.outbuf for u in live) and all(
            len(r.seen.get(s.nick, ())) >= lines_n for r in live for s in live if s is not r)

    pump(time.monotonic() + timeout, complete)
    live = [u for u in talkers if not u.dead]
    missing = sum(max(0, lines_n - len(r.seen.get(s.nick, ()))) for r in live for s in live if s is not r)
    bad = [b for u in users for b in u.bad]
    for u in users:
        if not u.dead:
            if random.random() < 0.1:
                u.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            u.sock.close()
    sel.close()
    return {"users": len(users), "talkers": len(talkers), "survivors": len(live), "missing": missing, "bad": bad,
            "relayed": sum(len(v) for u in users for v in u.seen.values())}


# --------------------------------------------------------------------------- one server under faults


def settle_and_check(srv, base_fds, warm_rss, args, tls_ctx=None):
    name = srv.name
    check(f"{name}: alive after the load", srv.alive(), srv.stderr()[-1500:])
    if not srv.alive():
        return
    check(f"{name}: a fresh client is served after the load (no hang)", served(srv.port, tls_ctx=tls_ctx))
    slack = 2
    settled = wait_until(lambda: abs(srv.fds() - base_fds) <= slack, args.settle)
    check(f"{name}: fds back to the baseline after the clients left (no leak)", settled,
          f"baseline {base_fds}, now {srv.fds()} (waited {args.settle:.0f} s)")
    rss = srv.rss_kb()
    limit = warm_rss * 1.25 + 8192
    check(f"{name}: RSS back near the level after warm-up", rss <= limit,
          f"after warm-up {warm_rss} KiB, now {rss} KiB, limit {limit:.0f} KiB")
    note(f"{name}: fds {base_fds} -> {srv.fds()}, RSS after warm-up {warm_rss} KiB -> {rss} KiB")


def finish(srv):
    name = srv.name
    code = srv.stop()
    err = srv.stderr()
    check(f"{name}: exits 0 on SIGTERM", code == 0, f"exit status {code}; stderr: {err[-1500:]}")
    fatal = FATAL_STDERR.search(err)
    check(f"{name}: no fatal error or crash report on stderr", fatal is None,
          err[max(0, fatal.start() - 500):fatal.start() + 1000] if fatal else "")
    made = len(re.findall(r"\] connection made$", err, re.M))
    lost = len(re.findall(r"\] connection lost$", err, re.M))
    m = re.search(r"accepted=(\d+) refused=(\d+) \[twine\] stopped", err)
    if m:
        check(f"{name}: counters exact: every connection made was lost, accepted = made",
              made == lost and int(m.group(1)) == made and made > 0,
              f"made {made}, lost {lost}, stopped line accepted={m.group(1)} refused={m.group(2)}")
        note(f"{name}: connections made {made}, lost {lost}; stopped: accepted={m.group(1)} refused={m.group(2)}")
    else:
        check(f"{name}: prints its stopped line with counters", False, err[-800:])
    table = srv.injections()
    check(f"{name}: the shim injected faults and wrote its report", sum(t[2] for t in table) > 0,
          f"report {srv.report}: {table}")
    for call, e, n, calls in table:
        entry = TABLE.setdefault((call, e), [0, 0])
        entry[0] += n
    calls_seen = {}
    for call, e, n, calls in table:
        calls_seen[call] = calls
    for call, calls in calls_seen.items():
        TABLE.setdefault((call, "(calls)"), [0, 0])[1] += calls
    return srv


def run_loadgen_rounds(srv, args, label, modes, tls=False):
    """Rounds of the load generator; a mismatch or a stall fails, killed connections are counted."""
    totals = {"requests": 0, "mismatch": 0, "killed": 0, "timeouts": 0, "rounds": 0}
    for mode_args in modes:
        if not srv.alive():
            break
        res, err = loadgen(args, srv.port, mode_args + (["--tls", "1"] if tls else []), timeout=args.round * 4 + 30)
        totals["rounds"] += 1
        if res is None and "all connections lost" in err:
            # Every connection of the round was ended by injected errors (resets, ENOMEM): the
            # server did what it should; that is no stall, and the next round goes on.
            totals["killed"] += 1
            note(f"{label}: {' '.join(mode_args)}: every connection killed by injected errors")
            continue
        if res is None:
            totals["timeouts"] += 1
            note(f"{label}: {err.strip()[-300:]}")
            continue
        kinds = res["error_kinds"]
        totals["requests"] += res["requests"]
        totals["mismatch"] += kinds["mismatch"]
        totals["killed"] += kinds["eof"] + kinds["reset"] + kinds["io"] + kinds["connect"]
        conns = int(mode_args[mode_args.index("--conns") + 1]) if "--conns" in mode_args else 1
        if kinds["timeout"] and kinds["eof"] + kinds["reset"] + kinds["io"] + kinds["connect"] >= conns:
            # Every connection died of injected errors before the measurement began: killed, not stalled.
            kinds = dict(kinds, timeout=0)
        totals["timeouts"] += kinds["timeout"]
        if kinds["mismatch"] or kinds["timeout"]:
            note(f"{label}: {' '.join(mode_args)}: {err.strip()[-400:]}")
    return totals


def echo_rounds(args):
    d = str(args.round)
    conns = "20" if args.smoke else "100"
    modes = [
        ["echo", "--conns", conns, "--size", "64", "--depth", "4", "--duration", d, "--warmup", "0.2"],
        ["echo", "--conns", conns, "--size", "4096", "--duration", d, "--warmup", "0.2"],
        ["stream", "--conns", "4", "--duration", d, "--warmup", "0.2"],
    ]
    return modes * args.repeat


def scenario_echo(args, rng):
    name = "echo"
    argv = shlex.split(args.echo_argv) if args.echo_argv else [args.twine, "echo", "--port", "0",
                                                               "--max-connections", "100000", "--log-level", "debug"]
    srv = Server(name, argv, rules(SOCKET_RULES, args), args)
    try:
        if not check(f"{name}: starts under the shim", srv.wait_listening(), srv.stderr()[-1500:]):
            srv.stop()
            return
        base_fds = srv.fds()
        warm = run_loadgen_rounds(srv, args, name, [["echo", "--conns", "10", "--size", "4096", "--duration", "0.5",
                                                     "--warmup", "0.1"]])
        wait_until(lambda: srv.fds() <= base_fds, 5)
        warm_rss = srv.rss_kb()
        t = run_loadgen_rounds(srv, args, name, echo_rounds(args))
        ok, killed, bad = echo_churn(srv.port, 150 if args.smoke else 1500, rng)
        note(f"{name}: loadgen {t['rounds']} rounds, {t['requests']} verified echoes, {t['killed']} connections "
             f"killed by injected errors (accepted); churn {ok} ok / {killed} killed / {bad} corrupted")
        check(f"{name}: every echoed byte correct on surviving connections", t["mismatch"] == 0 and bad == 0
              and warm["mismatch"] == 0, f"{t['mismatch']} loadgen mismatches, {bad} corrupted churn echoes")
        check(f"{name}: no load round stalled", t["timeouts"] == 0 and t["requests"] > 0,
              f"{t['timeouts']} rounds timed out, {t['requests']} echoes")
        check(f"{name}: most churn cycles served", ok >= 0.8 * (ok + killed + bad), f"{ok} of {ok + killed + bad}")
        settle_and_check(srv, base_fds, warm_rss, args)
        if args.echo_argv:  # a foreign server: no twine log, no shim report to read
            srv.stop()
            return
        finish(srv)
    finally:
        if srv.alive():
            srv.stop()
        srv.cleanup()


def scenario_tls(args, rng):
    name = "tls-echo"
    folder = tempfile.mkdtemp(prefix="twine-faults-tls-")
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                           "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                           "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], capture_output=True, timeout=60)
    if not check(f"{name}: a throwaway certificate", made.returncode == 0, made.stderr.decode()[-500:]):
        return
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cert)
    srv = Server(name, [args.twine, "echo", "--port", "0", "--max-connections", "100000", "--log-level", "debug",
                        "--tls-cert", cert, "--tls-key", key], rules(TLS_SOCKET_RULES + TLS_RULES, args), args)
    try:
        if not check(f"{name}: starts under the shim", srv.wait_listening(), srv.stderr()[-1500:]):
            srv.stop()
            return
        base_fds = srv.fds()
        warm = run_loadgen_rounds(srv, args, name, [["echo", "--conns", "10", "--size", "4096", "--duration", "0.5",
                                                     "--warmup", "0.1"]], tls=True)
        wait_until(lambda: srv.fds() <= base_fds, 5)
        warm_rss = srv.rss_kb()
        d = str(args.round)
        conns = "10" if args.smoke else "50"
        modes = [["echo", "--conns", conns, "--size", "4096", "--duration", d, "--warmup", "0.2"],
                 ["echo", "--conns", conns, "--size", "20000", "--depth", "2", "--duration", d, "--warmup", "0.2"]]
        t = run_loadgen_rounds(srv, args, name, modes * args.repeat, tls=True)
        note(f"{name}: loadgen {t['rounds']} rounds, {t['requests']} verified echoes, {t['killed']} connections "
             f"killed by injected errors (accepted)")
        check(f"{name}: every echoed byte correct on surviving connections",
              t["mismatch"] == 0 and warm["mismatch"] == 0, f"{t['mismatch']} mismatches")
        check(f"{name}: no load round stalled", t["timeouts"] == 0 and t["requests"] > 0,
              f"{t['timeouts']} rounds timed out, {t['requests']} echoes")
        settle_and_check(srv, base_fds, warm_rss, args, tls_ctx=ctx)
        finish(srv)
    finally:
        if srv.alive():
            srv.stop()
        srv.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def scenario_chat(args, rng):
    name = "chat"
    srv = Server(name, [args.twine, "chat", "--port", "0", "--log-level", "debug"], rules(SOCKET_RULES, args), args)
    try:
        if not check(f"{name}: starts under the shim", srv.wait_listening(), srv.stderr()[-1500:]):
            srv.stop()
            return
        base_fds = srv.fds()
        chat_round(srv.port, 5, 5, "w", 10)
        wait_until(lambda: srv.fds() <= base_fds, 5)
        warm_rss = srv.rss_kb()
        users, lines = (20, 30) if args.smoke else (60, 100)
        rounds = 2 * args.repeat
        relayed = missing = 0
        bad = []
        survivors = talkers = 0
        for r in range(rounds):
            fig = chat_round(srv.port, users, lines, f"r{r}", 30)
            relayed += fig["relayed"]
            missing += fig["missing"]
            bad += fig["bad"]
            survivors += fig["survivors"]
            talkers += fig["talkers"]
        note(f"{name}: {rounds} rounds of {users} users x {lines} lines: {relayed} relayed lines checked; "
             f"{survivors} of {talkers} talkers survived (the rest killed by injected errors)")
        check(f"{name}: every relayed line well-formed, from its sender, in order, byte-correct", not bad,
              f"{len(bad)} bad lines, e.g. {bad[:3]}")
        check(f"{name}: every line reached every user that stayed connected", missing == 0 and relayed > 0,
              f"{missing} lines missing between surviving users")
        # no hang for the chat: two fresh users talk
        fig = None
        for _ in range(3):
            fig = chat_round(srv.port, 2, 3, "fresh", 10)
            if fig["survivors"] == 2 and fig["missing"] == 0:
                break
        check(f"{name}: alive after the load", srv.alive(), srv.stderr()[-1500:])
        check(f"{name}: two fresh users can talk after the load (no hang)",
              fig["survivors"] == 2 and fig["missing"] == 0 and not fig["bad"], str(fig))
        settled = wait_until(lambda: abs(srv.fds() - base_fds) <= 2, args.settle)
        check(f"{name}: fds back to the baseline after the users left (no leak)", settled,
              f"baseline {base_fds}, now {srv.fds()}")
        rss = srv.rss_kb()
        limit = warm_rss * 1.25 + 8192
        check(f"{name}: RSS back near the level after warm-up", rss <= limit,
              f"after warm-up {warm_rss} KiB, now {rss} KiB")
        note(f"{name}: fds {base_fds} -> {srv.fds()}, RSS after warm-up {warm_rss} KiB -> {rss} KiB")
        finish(srv)
    finally:
        if srv.alive():
            srv.stop()
        srv.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--twine", required=True)
    ap.add_argument("--shim", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--smoke", action="store_true", help="the short run make test uses (< 90 s)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--only", default="echo,chat,tls")
    ap.add_argument("--extra-faults", default="", help="more rules, ';'-separated (e.g. a planted bug)")
    ap.add_argument("--echo-argv", default="", help="run this echo server instead of twine echo")
    ap.add_argument("--wrap", default="", help="start each server under this command (e.g. gdb -batch ...)")
    args = ap.parse_args()
    args.extra = [r for r in args.extra_faults.split(";") if r.strip()]
    args.round = 1.0 if args.smoke else 4.0
    args.repeat = 1 if args.smoke else 3
    args.settle = 10.0 if args.smoke else 20.0
    rng = random.Random(args.seed)
    random.seed(args.seed)
    started = time.monotonic()
    print(f"fault injection: seed {args.seed}, {'smoke' if args.smoke else 'full'} run; rules: "
          f"{';'.join(SOCKET_RULES + args.extra)} (TLS: without malloc/calloc, plus {';'.join(TLS_RULES)})", flush=True)
    scenarios = {"echo": scenario_echo, "chat": scenario_chat, "tls": scenario_tls}
    for which in args.only.split(","):
        scenarios[which.strip()](args, rng)
    print("\ninjections (all servers together):", flush=True)
    print(f"  {'call':<10} {'error':<13} {'injected':>9} {'calls':>10}")
    for (call, e), (n, _) in sorted(TABLE.items()):
        if e == "(calls)":
            continue
        calls = TABLE.get((call, "(calls)"), [0, 0])[1]
        print(f"  {call:<10} {e:<13} {n:>9} {calls:>10}")
    print(f"({time.monotonic() - started:.0f} s)")
    print(f"{results['passed']} passed, {results['failed']} failed", flush=True)
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
