import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `--control` / `--takeover`: a new twine takes over the old one's listening sockets; nothing is refused or reset.
@Suite("twine zero-downtime restart")
struct TakeoverCommandTests {
  /// `python3 -c restartLoad PORT SECONDS LONG`: a thread opens, uses (one echoed line) and
  /// closes connections in a loop for SECONDS + 1 s; meanwhile LONG long-lived connections
  /// each echo a line every 50 ms for SECONDS, then close. Prints `ready` once both run,
  /// then `churn ok=N refused=R reset=S errors=E long done=D bad=B`.
  static let restartLoad = """
    import socket, sys, threading, time
    port, seconds, count = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    churn = {"ok": 0, "refused": 0, "reset": 0, "errors": 0}
    stop = threading.Event()
    def loop():
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(b"ping\\n")
                    got = b""
                    while len(got) < 5:
                        part = s.recv(5 - len(got))
                        if not part:
                            raise ConnectionResetError("eof")
                        got += part
                    churn["ok" if got == b"ping\\n" else "errors"] += 1
            except ConnectionRefusedError:
                churn["refused"] += 1
            except ConnectionResetError:
                churn["reset"] += 1
            except OSError as e:
                churn["errors"] += 1
                print("churn error", e, file=sys.stderr, flush=True)
    worker = threading.Thread(target=loop)
    worker.start()
    long = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    while churn["ok"] < 10:
        time.sleep(0.01)
    print("ready", flush=True)
    done = bad = 0
    end = time.monotonic() + seconds
    round = 0
    alive = list(long)
    while time.monotonic() < end and alive:
        round += 1
        line = b"long %d\\n" % round
        for s in list(alive):
            try:
                s.sendall(line)
                got = b""
                while len(got) < len(line):
                    part = s.recv(len(line) - len(got))
                    if not part:
                        raise ConnectionResetError("eof")
                    got += part
                if got != line:
                    bad += 1
            except OSError as e:
                bad += 1
                alive.remove(s)
                print("long error", e, file=sys.stderr, flush=True)
        time.sleep(0.05)
    for s in alive:
        s.close()
        done += 1
    time.sleep(1)
    stop.set()
    worker.join()
    print("churn ok=%d refused=%d reset=%d errors=%d long done=%d bad=%d" % (
        churn["ok"], churn["refused"], churn["reset"], churn["errors"], done, bad), flush=True)
    """

  static func makeFolder() throws -> String {
    var template = Array("/tmp/twine-takeover-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
      throw HarnessError("mkdtemp: \(errorText(errno))")
    }
    return String(cString: made)
  }

  @Test("under load (a connect loop and 100 long-lived connections) a takeover refuses and resets nothing")
  func takeoverUnderLoad() throws {
    let folder = try Self.makeFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let control = folder + "/control"
    let old = try TwineServer(["echo", "--port", "0", "--max-connections", "500", "--control", control])
    defer { old.kill() }
    let python = try findProgram("python3")
    let load = try ChildProcess(python, ["-c", Self.restartLoad, "\(old.port)", "4", "100"])
    defer { load.kill() }
    #expect(waitUntil(timeout: 60) { load.stdoutText.contains("ready") || !load.isRunning }, "\(load.stderrText)")

    let started = monotonicSeconds()
    let new = try TwineServer([
      "echo", "--port", "0", "--max-connections", "500", "--control", control, "--takeover", control,
    ])
    defer { new.kill() }
    let listening = monotonicSeconds() - started
    #expect(new.port == old.port, "the new process serves the old one's socket: \(new.address)")
    #expect(old.waitForExit(timeout: 60) == .exited(0), "old: \(old.stderrText)")
    let oldExited = monotonicSeconds() - started
    #expect(old.stderrText.contains("taken over by a successor"), "old: \(old.stderrText)")
    #expect(old.stderrText.contains("cut=0"), "every long-lived connection finished on the old one: \(old.stderrText)")

    #expect(load.waitForExit(timeout: 60) == .exited(0), "load: \(load.stderrText)")
    let report = load.stdoutText
    #expect(report.contains("refused=0 reset=0 errors=0 long done=100 bad=0"), "load: \(report) \(load.stderrText)")
    // The new one serves alone now, and answers on the control path for the next restart.
    let client = try TCPClient.connect(port: new.port)
    #expect(try client.echo("after the restart") == "after the restart")
    var info = stat()
    #expect(lstat(control, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK, "the new control socket")
    new.send(SIGINT)
    #expect(new.waitForExit() == .exited(0), "new: \(new.stderrText)")
    let handover = new.stderrText.split(separator: "\n").first { $0.contains("took over") } ?? "?"
    print(
      "takeover under load: \(report.split(separator: "\n").last ?? ""); new listening after "
        + "\(String(format: "%.2f", listening)) s, old exited after \(String(format: "%.2f", oldExited)) s; \(handover)"
    )
  }

  @Test("a UNIX-domain socket is taken over: its file stays for the new process, which removes it on exit")
  func unixTakeover() throws {
    let folder = try Self.makeFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let control = folder + "/control"
    let path = folder + "/echo.sock"
    let old = try UNIXEchoCommandTests.startServer(path, ["--control", control])
    defer { old.kill() }
    let new = try UNIXEchoCommandTests.startServer(path, ["--takeover", control])
    defer { new.kill() }
    #expect(old.waitForExit() == .exited(0), "old: \(old.stderrText)")
    var info = stat()
    #expect(lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK, "the old one left the file to the new one")
    #expect(lstat(control, &info) != 0, "the old control socket is gone; the new one opened none")
    let python = try findProgram("python3")
    let result = try ChildProcess.run(
      python, ["-c", UNIXEchoCommandTests.pythonClient, path], stdin: Array("served by the new one".utf8))
    #expect(result.stdout == Array("served by the new one".utf8), "python3: \(result.stderr)")
    new.send(SIGTERM)
    #expect(new.waitForExit() == .exited(0), "new: \(new.stderrText)")
    #expect(lstat(path, &info) != 0 && errno == ENOENT, "the new process removed the file it took over")
  }

  @Test("the control socket drains only for the peer that took the sockets; other lines get an error line")
  func drainNeedsTakeover() throws {
    let folder = try Self.makeFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let control = folder + "/control"
    let server = try TwineServer(["echo", "--port", "0", "--control", control])
    defer { server.kill() }
    #expect(try CertificateRotationTests.control(control, "drain") == "error takeover first\n")
    // A successor that took the sockets and went away: its grant goes with its connection.
    let takeAndLeave = """
      import socket, sys
      s = socket.socket(socket.AF_UNIX)
      s.connect(sys.argv[1])
      s.sendall(b"takeover\\n")
      text, fds, _, _ = socket.recv_fds(s, 100, 10)
      print(text.decode().strip(), len(fds))
      """
    let took = try ChildProcess.run(try findProgram("python3"), ["-c", takeAndLeave, control])
    #expect(String(decoding: took.stdout, as: UTF8.self) == "sockets 1 1\n", "\(took.stderr)")
    #expect(try CertificateRotationTests.control(control, "drain") == "error takeover first\n")
    #expect(try CertificateRotationTests.control(control, "restart") == "error unknown command: restart\n")
    #expect(try CertificateRotationTests.control(control, "reload") == "reloaded nothing (no TLS listener)\n")
    #expect(server.isRunning && !server.stderrText.contains("draining"), "stderr: \(server.stderrText)")
    let client = try TCPClient.connect(port: server.port)
    #expect(try client.echo("still serving") == "still serving")
  }

  @Test("--takeover of a path where nothing answers exits 1 with one line")
  func nothingToTakeOver() throws {
    let folder = try Self.makeFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let result = try ChildProcess.run(
      try TwineExecutable.path(), ["echo", "--port", "0", "--takeover", folder + "/none"])
    #expect(result.termination == .exited(1))
    #expect(
      result.stderr.hasPrefix("twine: takeover failed: cannot reach the control socket \(folder)/none: "),
      "stderr: \(result.stderr)")
    #expect(result.stdout.isEmpty)
  }

  @Test("a successor that fails to serve the sockets leaves the old server serving")
  func failedSuccessorLeavesOldServing() throws {
    let folder = try Self.makeFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let control = folder + "/control"
    let old = try TwineServer(["echo", "--port", "0", "--control", control])
    defer { old.kill() }
    // TLS files that do not exist: the successor cannot serve what it received.
    let result = try ChildProcess.run(
      try TwineExecutable.path(),
      ["echo", "--takeover", control, "--tls-cert", folder + "/no.pem", "--tls-key", folder + "/no.key"])
    #expect(result.termination == .exited(1), "stderr: \(result.stderr)")
    #expect(result.stderr.hasPrefix("twine: takeover failed: cannot serve the sockets"), "stderr: \(result.stderr)")
    #expect(old.isRunning)
    let client = try TCPClient.connect(port: old.port)
    #expect(try client.echo("still the old one") == "still the old one")
  }
}
