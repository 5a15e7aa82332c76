import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `--drain-timeout`: SIGTERM stops accepting at once, lets open connections finish, cuts the rest at the deadline.
@Suite("twine drain on SIGTERM")
struct DrainCommandTests {
  /// `python3 -c loadClient PORT CLIENTS BYTES`: opens CLIENTS connections, each sends BYTES
  /// (byte p of a stream is p % 251) while reading the echo back, checks every byte, and
  /// closes once all came back. Prints `midway` once every client got a quarter back, then
  /// one line: `done=N bytes=B bad=X ends=...`.
  static let loadClient = """
    import selectors, socket, sys, time
    port, count, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    chunk = 65536
    pattern = bytes(i % 251 for i in range(chunk + 251))
    sel = selectors.DefaultSelector()
    clients = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        c = {"s": s, "sent": 0, "got": 0, "bad": 0, "end": None}
        clients.append(c)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
    midway = False
    deadline = time.monotonic() + 120
    while any(c["end"] is None for c in clients) and time.monotonic() < deadline:
        for key, events in sel.select(1):
            c = key.data
            s = c["s"]
            if c["end"] is not None:
                continue
            if events & selectors.EVENT_WRITE and c["sent"] < size:
                start = c["sent"] % 251
                try:
                    c["sent"] += s.send(pattern[start:start + min(chunk, size - c["sent"])])
                except BlockingIOError:
                    pass
                except OSError as e:
                    c["end"] = "send-" + type(e).__name__
                    sel.unregister(s)
                    continue
                if c["sent"] == size:
                    sel.modify(s, selectors.EVENT_READ, c)
            if events & selectors.EVENT_READ:
                try:
                    data = s.recv(chunk)
                except BlockingIOError:
                    continue
                except OSError as e:
                    c["end"] = "recv-" + type(e).__name__
                    sel.unregister(s)
                    continue
                if not data:
                    c["end"] = "eof-after-%d" % c["got"]
                    sel.unregister(s)
                    continue
                start = c["got"] % 251
                if data != pattern[start:start + len(data)]:
                    c["bad"] += 1
                c["got"] += len(data)
                if c["got"] == size:
                    c["end"] = "done"
                    sel.unregister(s)
                    s.close()
        if not midway and all(c["got"] >= size // 4 for c in clients):
            midway = True
            print("midway", flush=True)
    ends = sorted(set(c["end"] or "unfinished" for c in clients))
    done = sum(1 for c in clients if c["end"] == "done")
    print("done=%d bytes=%d bad=%d ends=%s" % (done, sum(c["got"] for c in clients),
          sum(c["bad"] for c in clients), ",".join(ends)), flush=True)
    """

  /// The errno of one plain connect to 127.0.0.1:`port` (0: connected).
  static func connectError(port: Int) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = in_addr_t(UInt32(0x7f00_0001).bigEndian)
    return withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 ? 0 : errno
      }
    }
  }

  @Test("100 clients mid-transfer of 10 MiB each: SIGTERM refuses new connects, every byte arrives, exit 0")
  func hundredClientsFinish() throws {
    let server = try TwineServer(["echo", "--port", "0", "--max-connections", "200", "--drain-timeout", "120"])
    defer { server.kill() }
    let size = 10 << 20
    let python = try findProgram("python3")
    let load = try ChildProcess(python, ["-c", Self.loadClient, "\(server.port)", "100", "\(size)"])
    defer { load.kill() }
    #expect(waitUntil(timeout: 120) { load.stdoutText.contains("midway") || !load.isRunning }, "no midway")
    let signalled = monotonicSeconds()
    server.send(SIGTERM)
    #expect(waitUntil(timeout: Timeouts.io) { server.stderrText.contains("draining") }, "\(server.stderrText)")
    // From the drain on, nothing listens: every connect is refused.
    let refusals = (0..<20).map { _ in Self.connectError(port: server.port) }
    #expect(refusals.allSatisfy { $0 == ECONNREFUSED }, "connect results after the signal: \(refusals)")
    #expect(load.waitForExit(timeout: 120) == .exited(0), "load client: \(load.stderrText)")
    let report = load.stdoutText
    #expect(report.contains("done=100 bytes=\(100 * size) bad=0 ends=done"), "load client: \(report)")
    #expect(server.waitForExit(timeout: 120) == .exited(0), "stderr: \(server.stderrText)")
    let drainSeconds = monotonicSeconds() - signalled
    #expect(drainSeconds < 120, "exited within the deadline")
    #expect(server.stderrText.contains("connections=100 cut=0"), "stderr: \(server.stderrText)")
    print("drain of 100 clients mid-transfer: exit \(String(format: "%.2f", drainSeconds)) s after SIGTERM")
  }

  @Test("a client that never finishes is cut at the deadline (FIN); the server exits 0 right after")
  func idleClientCutAtDeadline() throws {
    let server = try TwineServer(["echo", "--port", "0", "--drain-timeout", "2"])
    defer { server.kill() }
    let idle = try TCPClient.connect(port: server.port)
    #expect(try idle.echo("still here") == "still here")
    let signalled = monotonicSeconds()
    server.send(SIGTERM)
    let rest = try idle.readToEnd(timeout: 30)
    let cutAfter = monotonicSeconds() - signalled
    #expect(rest.bytes.isEmpty && rest.end == .eof, "\(rest)")
    #expect(cutAfter > 1.5, "cut at the deadline, not before: \(cutAfter) s")
    #expect(server.waitForExit(timeout: 30) == .exited(0), "stderr: \(server.stderrText)")
    #expect(monotonicSeconds() - signalled < 2 + 10, "exit soon after the deadline")
    #expect(server.stderrText.contains("connections=1 cut=1"), "stderr: \(server.stderrText)")
  }

  @Test("a second SIGTERM during the drain closes everything at once")
  func secondSignalClosesAtOnce() throws {
    let server = try TwineServer(["echo", "--port", "0", "--drain-timeout", "600"])
    defer { server.kill() }
    let idle = try TCPClient.connect(port: server.port)
    #expect(try idle.echo("x") == "x")
    server.send(SIGTERM)
    #expect(waitUntil(timeout: Timeouts.io) { server.stderrText.contains("draining") }, "\(server.stderrText)")
    #expect(!idle.isReadable(timeout: 0.3), "the first SIGTERM leaves the connection open")
    server.send(SIGTERM)
    #expect(try idle.readToEnd(timeout: 30).end == .eof)
    #expect(server.waitForExit(timeout: 30) == .exited(0), "stderr: \(server.stderrText)")
  }

  @Test("chat users are told the server is shutting down and closed; the drain ends before its deadline")
  func chatSaysGoodbye() throws {
    let server = try TwineServer(["chat", "--port", "0", "--drain-timeout", "600"])
    defer { server.kill() }
    let user = try TCPClient.connect(port: server.port)
    _ = try user.read(count: 1)  // the greeting has begun: the user is in the room
    server.send(SIGTERM)
    let rest = String(decoding: try user.readToEnd(timeout: 30).bytes, as: UTF8.self)
    #expect(rest.contains("* server shutting down, bye"), "\(rest)")
    #expect(server.waitForExit(timeout: 30) == .exited(0), "stderr: \(server.stderrText)")
    #expect(server.stderrText.contains("cut=0"), "stderr: \(server.stderrText)")
  }

  @Test("--drain-timeout must be 0 or more seconds", arguments: ["-1", "inf", "nan", "x"])
  func badDrainTimeout(value: String) throws {
    let result = try ChildProcess.run(try TwineExecutable.path(), ["echo", "--drain-timeout", value])
    #expect(result.termination.isFailure)
    #expect(result.stderr.contains("--drain-timeout"), "stderr: \(result.stderr)")
    #expect(result.stderr.contains("Usage: twine"), "stderr: \(result.stderr)")
    #expect(result.stdout.isEmpty)
  }
}
