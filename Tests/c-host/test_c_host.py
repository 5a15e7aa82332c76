#!/usr/bin/env python3
"""Drives the example C host (Examples/c-host) as real processes over real sockets.

    python3 Tests/c-host/test_c_host.py --bin DIR --prefix DIR [--asan] [--cc "CC FLAGS"] [--ldflags FLAGS]
    python3 Tests/c-host/test_c_host.py --prefix DIR --tsan --cc "CC FLAGS" --ldflags FLAGS

DIR (--bin) holds the hosts built by Examples/c-host/Makefile; --prefix is the
installed C API they were built against. With --asan the hosts were built with
AddressSanitizer: every run must also end without a sanitizer report (leaks
included). Prints one PASS/FAIL line per check and "N passed, N failed"; exits 1
on any failure. python3 standard library only; every wait is bounded. The C API's own
tests (api_test.c, protocol_test.c, threads_test.c) are compiled here with --cc, against
the installed twine.h and libtwine; with --tsan (libtwine built with ThreadSanitizer) only
they run, and any ThreadSanitizer report fails them.
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

STARTUP = 60.0
EXIT = 30.0
IO = 20.0
REFUSAL = b"Too many connections, try later"
SANITIZER = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|SUMMARY: AddressSanitizer|WARNING: ThreadSanitizer")

results = {"passed": [], "failed": []}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"].append(name)
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)
    return ok


class Host:
    """One host process; stdout and stderr go to files (no pipe can fill up)."""

    def __init__(self, path, args, env=None):
        self.out = tempfile.TemporaryFile(mode="w+b")
        self.err = tempfile.TemporaryFile(mode="w+b")
        self.proc = subprocess.Popen([path] + args, stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err,
                                     env=env)
        self.c_port = self.echo_port = self.adopt_port = self.c_line_port = self.greeter_port = None

    # pread, not seek + read: the child writes through the same open file, at its offset.
    @staticmethod
    def _read(f):
        return os.pread(f.fileno(), os.fstat(f.fileno()).st_size, 0).decode(errors="replace")

    def stdout(self):
        return self._read(self.out)

    def stderr(self):
        return self._read(self.err)

    def wait_ports(self):
        deadline = time.monotonic() + STARTUP
        while time.monotonic() < deadline:
            text = self.stdout()
            c = re.search(r"^c-protocol on 127\.0\.0\.1:(\d+)$", text, re.M)
            e = re.search(r"^listening on 127\.0\.0\.1:(\d+)$", text, re.M)
            if c and e:
                self.c_port, self.echo_port = int(c.group(1)), int(e.group(1))
                a = re.search(r"^adopt on 127\.0\.0\.1:(\d+)$", text, re.M)
                self.adopt_port = int(a.group(1)) if a else None
                line = re.search(r"^c-line on 127\.0\.0\.1:(\d+)$", text, re.M)
                self.c_line_port = int(line.group(1)) if line else None
                greeter = re.search(r"^greeter on 127\.0\.0\.1:(\d+)$", text, re.M)
                self.greeter_port = int(greeter.group(1)) if greeter else None
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.01)
        return False

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=EXIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=IO)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(s, count):
    data = b""
    while len(data) < count:
        chunk = s.recv(min(65536, count - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def recv_to_end(s):
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def heartbeats(text):
    return [int(n) for n in re.findall(r"^heartbeat (\d+)$", text, re.M)]


def wait_until(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def no_sanitizer_report(name, host, asan):
    if asan:
        report = SANITIZER.search(host.stderr())
        check(f"{name}: no AddressSanitizer/LeakSanitizer report", report is None, host.stderr()[-3000:])


def fds_balanced(name, host):
    m = re.search(r"^fds before=(\d+) after=(\d+)$", host.stdout(), re.M)
    check(f"{name}: the host's own fd count is back where it started after teardown",
          m is not None and m.group(1) == m.group(2), m.group(0) if m else "no 'fds' line")


def serve_and_stop(binary, asan):
    """Both ports, heartbeat while Twine's echo is busy, SIGTERM, fds, counters."""
    name = os.path.basename(binary)
    host = Host(binary, ["--heartbeat-ms", "50", "--twine-log-level", "debug"])
    try:
        if not check(f"{name}: starts and prints both ports", host.wait_ports(), host.stderr()[-2000:]):
            return
        idle_fds = host.fd_count()

        with connect(host.c_port) as c:
            c.sendall(b"hello\r\nworld\n")
            expected = b"C says: hello\nC says: world\n"
            got = recv_exactly(c, len(expected))
        check(f"{name}: the C-only protocol answers on its port", got == expected, repr(got))

        with connect(host.c_line_port) as c:  # a protocol written in C, on Twine's transport
            c.sendall(b"one\ntw")
            c.sendall(b"o\n")
            expected = b"C on Twine: one\nC on Twine: two\n"
            got = recv_exactly(c, len(expected))
        check(f"{name}: the C line protocol on Twine (twine_factory_new_callbacks) answers whole lines", got == expected,
              repr(got))

        # Twine's echo kept busy by 4 connections ping-ponging 64 KiB for 2 s, checked byte for byte.
        message = bytes((i * 31 + (i >> 8)) & 0xFF for i in range(64 << 10))
        busy_for = 2.0
        stats = {"rounds": 0, "bad": 0, "errors": []}
        lock = threading.Lock()

        def player():
            try:
                with connect(host.echo_port) as s:
                    end = time.monotonic() + busy_for
                    while time.monotonic() < end:
                        s.sendall(message)
                        back = recv_exactly(s, len(message))
                        with lock:
                            stats["rounds"] += 1
                            stats["bad"] += back != message
            except OSError as e:
                with lock:
                    stats["errors"].append(repr(e))

        beats_before = heartbeats(host.stdout())
        arrivals = []
        threads = [threading.Thread(target=player) for _ in range(4)]
        start = time.monotonic()
        for t in threads:
            t.start()
        seen = len(beats_before)
        middle_answer = None
        while any(t.is_alive() for t in threads) and time.monotonic() - start < busy_for + IO:
            n = len(heartbeats(host.stdout()))
            now = time.monotonic()
            arrivals += [now] * (n - seen)
            seen = n
            if middle_answer is None and now - start > busy_for / 2:
                with connect(host.c_port) as c:  # the host's own protocol, while Twine is busy
                    c.sendall(b"busy?\n")
                    middle_answer = recv_exactly(c, len(b"C says: busy?\n"))
            time.sleep(0.01)
        for t in threads:
            t.join(IO)
        elapsed = time.monotonic() - start
        check(f"{name}: Twine's echo served 4 busy connections, every byte right",
              not stats["errors"] and stats["bad"] == 0 and stats["rounds"] >= 8, str(stats))
        expected_beats = elapsed / 0.05
        gaps = [b - a for a, b in zip([start] + arrivals, arrivals + [time.monotonic()])]
        check(f"{name}: the host's heartbeat kept coming while Twine was busy",
              len(arrivals) >= 0.3 * expected_beats and max(gaps) < 1.0,
              f"{len(arrivals)} heartbeats in {elapsed:.2f} s, largest gap {max(gaps):.3f} s")
        check(f"{name}: the C protocol answered while Twine was busy", middle_answer == b"C says: busy?\n",
              repr(middle_answer))
        check(f"{name}: Twine's log lines reach the host's C callback, naming the peer and the listening port",
              re.search(rf"^twine\[debug\]: connection made peer=127\.0\.0\.1:\d+ port=127\.0\.0\.1:{host.echo_port}$",
                        host.stderr(), re.M) is not None, host.stderr()[-1000:])
        check(f"{name}: the listening line names port and factory",
              re.search(r"^twine\[info\]: listening factory=callbacks port=127\.0\.0\.1:\d+$", host.stderr(), re.M)
              is not None, host.stderr()[-1000:])
        with connect(host.adopt_port) as s:  # accepted by the host in C, handed over with twine_adopt_fd
            s.sendall(b"adopted")
            adopted = recv_exactly(s, 7)
        check(f"{name}: a connection the host accepted and adopted into Twine is echoed", adopted == b"adopted",
              repr(adopted))
        check(f"{name}: every connection's fd is closed once the clients are gone",
              wait_until(lambda: host.fd_count() == idle_fds, 10), f"{host.fd_count()} fds, {idle_fds} at idle")

        code = host.stop()
        check(f"{name}: SIGTERM ends it with exit status 0", code == 0, f"exit {code}; {host.stderr()[-2000:]}")
        out = host.stdout()
        m = re.search(r"^twine-echo accepted=(\d+) live=(\d+) refused=(\d+) bytes_in=(\d+) bytes_out=(\d+)$", out, re.M)
        check(f"{name}: the echo's counters, read through the C API, add up",
              m is not None and m.group(1) == "5" and m.group(2) == "0" and m.group(4) == m.group(5)
              and int(m.group(4)) == stats["rounds"] * len(message) + 7, m.group(0) if m else out[-500:])
        fds_balanced(name, host)
        beats = heartbeats(out)
        check(f"{name}: heartbeats are numbered without a hole", beats == list(range(1, len(beats) + 1)), str(beats))
        no_sanitizer_report(name, host, asan)
    finally:
        host.kill()


def connection_limit(binary, asan):
    name = os.path.basename(binary)
    host = Host(binary, ["--max-connections", "1"])
    try:
        if not check(f"{name} --max-connections 1: starts", host.wait_ports(), host.stderr()[-2000:]):
            return
        with connect(host.echo_port) as first:
            first.sendall(b"one")
            got_first = recv_exactly(first, 3)
            with connect(host.echo_port) as second:
                refused = recv_to_end(second)
        check(f"{name}: past the limit, Twine's counting echo refuses with its message",
              got_first == b"one" and refused == REFUSAL, repr((got_first, refused)))
        check(f"{name} --max-connections 1: SIGTERM, exit 0", host.stop() == 0, host.stderr()[-2000:])
        no_sanitizer_report(f"{name} --max-connections 1", host, asan)
    finally:
        host.kill()


def twine_c_echo(binary, asan):
    """--twine-c-echo: the echo port served by an echo written in C on Twine (the benchmark's third mode)."""
    name = os.path.basename(binary)
    host = Host(binary, ["--twine-c-echo"])
    try:
        if not check(f"{name} --twine-c-echo: starts", host.wait_ports(), host.stderr()[-2000:]):
            return
        message = bytes(range(256)) * 1024
        with connect(host.echo_port) as s:
            s.sendall(message)
            got = recv_exactly(s, len(message))
        check(f"{name} --twine-c-echo: the C-callback echo on Twine returns 256 KiB intact", got == message,
              f"{len(got)} bytes")
        check(f"{name} --twine-c-echo: SIGTERM, exit 0", host.stop() == 0, host.stderr()[-2000:])
        no_sanitizer_report(f"{name} --twine-c-echo", host, asan)
    finally:
        host.kill()


def setup_errors(binary, asan):
    """The C API's error paths, from C: the host reports them and exits 1, without a crash."""
    name = os.path.basename(binary)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    cases = [
        (["--echo-port", str(port)], "twine_listen failed: TWINE_EADDRINUSE: twine_listen: cannot listen on "
         f"127.0.0.1:{port}: Address already in use"),
        (["--echo-port", "70000"], "twine_listen failed: TWINE_EINVAL: twine_listen: port 70000 is not in 0...65535"),
        (["--echo-port", "-1"], "twine_listen failed: TWINE_EINVAL: twine_listen: port -1 is not in 0...65535"),
    ]
    try:
        for args, message in cases:
            label = f"{name} {' '.join(args)}"
            host = Host(binary, args)
            try:
                code = host.proc.wait(timeout=STARTUP)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                host.kill()
            check(f"{label}: exits 1 with the C API's error code and message",
                  code == 1 and message in host.stderr(), f"exit {code}; stderr: {host.stderr()[-1500:]}")
            fds_balanced(label, host)
            no_sanitizer_report(label, host, asan)
    finally:
        taken.close()


def minimal(binary):
    """The README's lines: the same as minimal.c; listens, echoes."""
    here = os.path.dirname(os.path.abspath(__file__))
    example = os.path.join(here, "..", "..", "Examples", "c-host")
    readme = open(os.path.join(example, "README.md")).read()
    block = re.search(r"```c\n(.*?)```", readme, re.S)
    check("the README's C lines are minimal.c, word for word",
          block is not None and block.group(1) == open(os.path.join(example, "minimal.c")).read())
    host = Host(binary, ["0"])
    try:
        deadline = time.monotonic() + STARTUP
        port = None
        while port is None and time.monotonic() < deadline and host.proc.poll() is None:
            m = re.search(r"^listening on 127\.0\.0\.1:(\d+)$", host.stdout(), re.M)
            port = int(m.group(1)) if m else None
            time.sleep(0.01)
        if not check("minimal: starts", port is not None, host.stderr()[-2000:]):
            return
        with connect(port) as s:
            s.sendall(b"fifteen lines")
            got = recv_exactly(s, 13)
        check("minimal: echoes", got == b"fifteen lines", repr(got))
    finally:
        host.kill()


def greeter(binary, prefix):
    """The template's own Swift protocol, in libgreeter with Twine's C API, served by host-greeter(-static)."""
    for path in [binary, binary + "-static"]:
        name = os.path.basename(path)
        host = Host(path, [])
        try:
            if not check(f"{name}: starts and prints the greeter's port", host.wait_ports() and host.greeter_port,
                         host.stderr()[-2000:]):
                continue
            with connect(host.greeter_port) as s:
                s.sendall(b"world\n")
                got = recv_exactly(s, len(b"hi, world!\n"))
            check(f"{name}: the team's Swift protocol, registered by name, answers", got == b"hi, world!\n",
                  repr(got))
            with connect(host.echo_port) as s:
                s.sendall(b"echo too")
                got = recv_exactly(s, 8)
            check(f"{name}: Twine's built-in echo is in the same library", got == b"echo too", repr(got))
            check(f"{name}: SIGTERM, exit 0", host.stop() == 0, host.stderr()[-2000:])
        finally:
            host.kill()
    library = os.path.join(prefix, "lib", "libgreeter.so")
    out = subprocess.run(["nm", "-D", "--defined-only", library], capture_output=True, text=True, timeout=IO).stdout
    exported = [line.split()[-1] for line in out.splitlines() if len(line.split()) == 3 and line.split()[1].isupper()]
    check("libgreeter.so exports Twine's C API and greeter_register, nothing else",
          "greeter_register" in exported and "twine_reactor_new" in exported
          and all(s.startswith("twine_") or s.startswith("greeter_") for s in exported),
          ", ".join(s for s in exported if not s.startswith(("twine_", "greeter_")))[:500])
    dynamic = subprocess.run(["readelf", "-d", library], capture_output=True, text=True, timeout=IO).stdout
    check("libgreeter.so's SONAME is libgreeter.so.1 (its own version)", "[libgreeter.so.1]" in dynamic, dynamic[-500:])


def exported_symbols(prefix):
    out = subprocess.run(["nm", "-D", "--defined-only", os.path.join(prefix, "lib", "libtwine.so")],
                         capture_output=True, text=True, timeout=IO).stdout
    exported = [line.split()[-1] for line in out.splitlines() if len(line.split()) == 3 and line.split()[1].isupper()]
    check("libtwine.so exports only twine_ symbols", exported and all(s.startswith("twine_") for s in exported),
          ", ".join(s for s in exported if not s.startswith("twine_"))[:500])
    header = open(os.path.join(prefix, "include", "twine.h")).read()
    declared = set(re.findall(r"\b(twine_\w+)\(", header))
    check("every function twine.h declares is exported, and nothing else",
          declared == set(exported), f"header only: {declared - set(exported)}, library only: {set(exported) - declared}")


def pkg_config(prefix, *args):
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(os.path.abspath(prefix), "lib", "pkgconfig"))
    return subprocess.run(["pkg-config", *args], capture_output=True, text=True, env=env, check=True).stdout.split()


def header_and_library(prefix):
    """twine.h compiles alone as strict C99 and as C++; libtwine.so carries its SONAME."""
    include = os.path.join(prefix, "include")
    with tempfile.TemporaryDirectory() as work:
        source = os.path.join(work, "only_header.c")
        with open(source, "w") as f:
            f.write("#include <twine.h>\nint main(void) { return TWINE_OK + TWINE_VERSION_MAJOR * 0; }\n")
        for compiler, flags in [("cc", ["-std=c99", "-pedantic", "-x", "c"]),
                                ("c++", ["-std=c++11", "-pedantic", "-x", "c++"])]:
            done = subprocess.run([compiler, "-Wall", "-Wextra", "-Werror", *flags, "-I", include, "-fsyntax-only",
                                   source], capture_output=True, text=True, timeout=60)
            check(f"twine.h compiles alone with {compiler} -Wall -Wextra -Werror {' '.join(flags[:-2])}",
                  done.returncode == 0, done.stderr[-1500:])
    out = subprocess.run(["readelf", "-d", os.path.join(prefix, "lib", "libtwine.so")], capture_output=True,
                         text=True, timeout=IO).stdout
    check("libtwine.so's SONAME is libtwine.so.0", "Library soname: [libtwine.so.0]" in out, out[-800:])


def c_tests(prefix, cc, ldflags, sanitized):
    """The C API's rules, from C (Tests/c-host/api_test.c), built like the host and run."""
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as work:
        for name in ["api_test", "protocol_test", "threads_test"]:
            binary = os.path.join(work, name)
            build = subprocess.run([*cc.split(), "-Wall", "-Wextra", "-Werror", "-std=gnu11", "-pthread", "-o", binary,
                                    os.path.join(here, name + ".c"), *pkg_config(prefix, "--cflags", "--libs", "twine"),
                                    *ldflags.split()],
                                   capture_output=True, text=True, timeout=300)
            if not check(f"{name}.c builds against the installed twine.h and libtwine", build.returncode == 0,
                         build.stderr[-2000:]):
                continue
            try:
                run = subprocess.run([binary], capture_output=True, text=True, timeout=300)
                output, code = run.stdout, run.returncode
                errors = run.stderr
            except subprocess.TimeoutExpired as e:
                output, code, errors = (e.stdout or b"").decode(errors="replace"), None, "timed out"
            for line in output.splitlines():
                if line.startswith("PASS ") or line.startswith("FAIL "):
                    ok = line.startswith("PASS ")
                    results["passed" if ok else "failed"].append(f"{name}: {line[5:]}")
                    print(f"{line[:5]}{name}: {line[5:]}", flush=True)
            check(f"{name} ran to the end and exited 0", code == 0 and f"{name}: 0 failed" in output,
                  f"exit {code}; {errors[-2000:]}")
            if sanitized:
                check(f"{name}: no sanitizer report", SANITIZER.search(errors) is None, errors[-3000:])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--asan", action="store_true")
    parser.add_argument("--tsan", action="store_true", help="libtwine built with ThreadSanitizer: the C tests only")
    parser.add_argument("--cc", default="cc", help="compiler and flags for the C tests (as the hosts were built)")
    parser.add_argument("--ldflags", default="", help="extra link flags for the C tests")
    parser.add_argument("--greeter", help="where `make swift-template` installed libgreeter (host-greeter is in --bin)")
    args = parser.parse_args()
    started = time.monotonic()
    if args.tsan:
        c_tests(args.prefix, args.cc, args.ldflags, True)
        return summary(started)
    exported_symbols(args.prefix)
    if not args.asan:
        header_and_library(args.prefix)
    c_tests(args.prefix, args.cc, args.ldflags, args.asan)
    hosts = ["host"] if args.asan else ["host", "host-static"]
    for h in hosts:
        binary = os.path.join(args.bin, h)
        serve_and_stop(binary, args.asan)
        connection_limit(binary, args.asan)
        twine_c_echo(binary, args.asan)
        setup_errors(binary, args.asan)
    if not args.asan:
        minimal(os.path.join(args.bin, "minimal"))
    if args.greeter:
        greeter(os.path.join(args.bin, "host-greeter"), args.greeter)
    return summary(started)


def summary(started):
    passed, failed = len(results["passed"]), len(results["failed"])
    print(f"{passed} passed, {failed} failed ({time.monotonic() - started:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
