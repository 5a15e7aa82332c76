import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `twine … --listen ENDPOINT`: several listeners in one process, systemd socket
/// activation, a real haproxy in front with `send-proxy-v2`, and bad strings.
@Suite("twine --listen")
struct ListenCommandTests {
  /// The `listening on` lines a server printed (waits until it printed `count` lines).
  static func lines(_ child: ChildProcess, count: Int) throws -> [String] {
    let printed = waitUntil(timeout: Timeouts.startup) {
      child.stdoutText.split(separator: "\n").count >= count || !child.isRunning
    }
    let lines = child.stdoutText.split(separator: "\n").map(String.init)
    guard printed, lines.count >= count else {
      child.kill()
      throw HarnessError("printed \(child.stdoutText.debugDescription); stderr: \(child.stderrText)")
    }
    return lines
  }

  /// The port at the end of a `… HOST:PORT` line.
  static func port(_ line: String) throws -> Int {
    guard let colon = line.lastIndex(of: ":"), let port = Int(line[line.index(after: colon)...]) else {
      throw HarnessError("no port in \(line)")
    }
    return port
  }

  @Test("two --listen endpoints (tcp and unix) in one process share one factory and its counters")
  func severalListeners() throws {
    let folder = try UNIXEchoCommandTests.makeFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let path = folder + "/e.sock"
    let child = try ChildProcess(
      try TwineExecutable.path(), ["echo", "--listen", "tcp:0:interface=127.0.0.1", "--listen", "unix:\(path)"])
    defer { child.kill() }
    let lines = try Self.lines(child, count: 2)
    #expect(lines[0].hasPrefix("listening on 127.0.0.1:"))
    #expect(lines[1] == "listening on \(path)")
    let client = try TCPClient.connect(port: try Self.port(lines[0]))
    #expect(try client.echo("over tcp\n") == "over tcp\n")
    client.close()
    let python = try findProgram("python3")
    let payload = Array("over unix".utf8)
    let result = try ChildProcess.run(
      python, ["-c", UNIXEchoCommandTests.pythonClient, path], stdin: payload, timeout: Timeouts.io)
    #expect(result.stdout == payload)
    child.send(SIGTERM)
    #expect(child.waitForExit() == .exited(0))
    #expect(child.stderrText.contains("accepted=2"), "\(child.stderrText)")
  }

  @Test(
    "a malformed --listen prints the bad part and usage, and exits non-zero",
    arguments: [
      ("tcp:http", "\"port=http\": port must be a whole number"),
      ("tcp:80:colour=red", "tcp has no parameter \"colour\""),
      ("nope:1", "\"nope\": unknown endpoint type"),
      ("systemd:domain=INET", "needs index=N or name=NAME"),
    ])
  func malformed(_ endpoint: String, _ message: String) throws {
    let result = try ChildProcess.run(try TwineExecutable.path(), ["echo", "--listen", endpoint])
    #expect(result.termination != .exited(0))
    #expect(result.stderr.contains(message), "\(result.stderr)")
    #expect(result.stderr.contains("Usage:"), "\(result.stderr)")
  }

  /// Binds a listening TCP socket on 127.0.0.1, puts it on fd 3, sets LISTEN_FDS=1 and
  /// LISTEN_PID to its own pid (exec keeps the pid, as systemd's does), then execs argv[1:].
  static let socketActivation = """
    import os, socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    if s.fileno() != 3:
        os.dup2(s.fileno(), 3, inheritable=True)
    else:
        os.set_inheritable(3, True)
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDNAMES"] = "echo"
    os.execv(sys.argv[1], sys.argv[1:])
    """

  @Test("socket activation: twine echo --listen systemd:domain=INET:index=0 serves the socket on fd 3")
  func systemdActivation() throws {
    let python = try findProgram("python3")
    let twine = try TwineExecutable.path()
    for endpoint in ["systemd:domain=INET:index=0", "systemd:domain=INET:name=echo"] {
      let child = try ChildProcess(python, ["-c", Self.socketActivation, twine, "echo", "--listen", endpoint])
      defer { child.kill() }
      let line = try Self.lines(child, count: 1)[0]
      #expect(line.hasPrefix("listening on 127.0.0.1:"), "\(line)")
      let client = try TCPClient.connect(port: try Self.port(line))
      #expect(try client.echo("activated\n") == "activated\n")
      client.close()
      child.send(SIGTERM)
      #expect(child.waitForExit() == .exited(0))
    }
    // The wrong domain is refused with a clear error.
    let wrong = try ChildProcess(
      python, ["-c", Self.socketActivation, twine, "echo", "--listen", "systemd:domain=UNIX:index=0"])
    defer { wrong.kill() }
    #expect(wrong.waitForExit() == .exited(1))
    #expect(wrong.stderrText.contains("is not an UNIX socket"), "\(wrong.stderrText)")
  }

  /// A TCP port nothing listens on right now.
  static func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
      }
    }
    guard bound else { throw HarnessError("cannot find a free port: \(errorText(errno))") }
    return Int(UInt16(bigEndian: address.sin_port))
  }

  @Test(
    "a real haproxy with send-proxy-v2 in front of twine echo --listen haproxy:tcp:…: echo works, the log names the client"
  )
  func realHAProxy() throws {
    let haproxy = (try? findProgram("haproxy")) ?? "/usr/sbin/haproxy"
    let server = try TwineServer([
      "echo", "--listen", "haproxy:tcp:0:interface=127.0.0.1", "--log-level", "debug",
    ])
    defer { server.kill() }
    let front = try Self.freePort()
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("twine-haproxy-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let config = folder.appendingPathComponent("haproxy.cfg").path
    try """
    global
      maxconn 64
    defaults
      mode tcp
      timeout connect 5s
      timeout client 30s
      timeout server 30s
    frontend front
      bind 127.0.0.1:\(front)
      default_backend twine
    backend twine
      server echo 127.0.0.1:\(server.port) send-proxy-v2

    """.write(toFile: config, atomically: true, encoding: .utf8)
    let proxy = try ChildProcess(haproxy, ["-f", config, "-db"])
    defer { proxy.kill() }
    var client: TCPClient?
    _ = waitUntil(timeout: Timeouts.startup) {
      client = try? TCPClient.connect(port: front)
      return client != nil || !proxy.isRunning
    }
    let connected = try #require(client, "haproxy did not accept; stderr: \(proxy.stderrText)")
    let clientPort = connected.localPort
    #expect(try connected.echo("through haproxy\n") == "through haproxy\n")
    connected.close()
    let logged = waitUntil(timeout: Timeouts.io) { server.stderrText.contains("peer=127.0.0.1:\(clientPort)") }
    #expect(logged, "no PROXY header line naming 127.0.0.1:\(clientPort): \(server.stderrText)")
    #expect(server.stderrText.contains("version=v2"), "\(server.stderrText)")
  }
}

extension TCPClient {
  /// The client side's own port (getsockname).
  var localPort: Int {
    var address = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
  }
}
