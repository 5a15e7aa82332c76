import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `twine echo --unix PATH` driven by a python3 AF_UNIX client.
@Suite("twine echo --unix")
struct UNIXEchoCommandTests {
  /// Reads its payload from stdin, sends it over the socket at argv[1], half-closes,
  /// prints what comes back until EOF.
  static let pythonClient = """
    import socket, sys
    data = sys.stdin.buffer.read()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(sys.argv[1])
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    sys.stdout.buffer.write(got)
    """

  /// A fresh folder for the socket (short: `sun_path` holds 107 bytes), removed afterwards.
  static func makeFolder() throws -> String {
    let folder = "/tmp/twine-cli-unix-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
    return folder
  }

  /// Starts `twine echo --unix path` and waits for its `listening on PATH` line.
  static func startServer(_ path: String, _ extra: [String] = []) throws -> ChildProcess {
    let child = try ChildProcess(try TwineExecutable.path(), ["echo", "--unix", path] + extra)
    let printed = waitUntil(timeout: Timeouts.startup) { child.stdoutText.contains("\n") || !child.isRunning }
    guard printed, child.stdoutText == "listening on \(path)\n" else {
      child.kill()
      throw HarnessError("twine echo --unix printed \(child.stdoutText.debugDescription); stderr: \(child.stderrText)")
    }
    return child
  }

  @Test("echo --unix returns exactly what a python3 AF_UNIX client sent; SIGTERM exits 0 and removes the socket")
  func pythonRoundTrip() throws {
    let folder = try Self.makeFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let path = folder + "/echo.sock"
    let server = try Self.startServer(path)
    defer { server.kill() }
    let payload = EchoCommandTests.payload
    let python = try findProgram("python3")
    let result = try ChildProcess.run(python, ["-c", Self.pythonClient, path], stdin: payload, timeout: Timeouts.io)
    #expect(result.termination == .exited(0), "python3: \(result.stderr)")
    #expect(result.stdout == payload)
    var info = stat()
    #expect(lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK)
    server.send(SIGTERM)
    #expect(server.waitForExit() == .exited(0), "stderr: \(server.stderrText)")
    #expect(server.stderrText.contains("accepted=1"), "stderr: \(server.stderrText)")
    #expect(lstat(path, &info) != 0 && errno == ENOENT, "the socket file is removed on exit")
  }

  @Test("a second server on the same path exits 1 with one line; the first keeps serving")
  func pathTaken() throws {
    let folder = try Self.makeFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let path = folder + "/taken.sock"
    let first = try Self.startServer(path)
    defer { first.kill() }
    let second = try ChildProcess.run(try TwineExecutable.path(), ["echo", "--unix", path])
    #expect(second.termination == .exited(1))
    #expect(
      second.stderr == "twine: cannot listen on \(path): Address already in use (a server accepts connections there)\n")
    #expect(second.stdout.isEmpty)
    let python = try findProgram("python3")
    let result = try ChildProcess.run(
      python, ["-c", Self.pythonClient, path], stdin: Array("still mine".utf8), timeout: Timeouts.io)
    #expect(result.stdout == Array("still mine".utf8), "python3: \(result.stderr)")
  }

  @Test("a server killed with SIGKILL leaves a stale socket that the next server replaces")
  func staleSocketAfterCrash() throws {
    let folder = try Self.makeFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let path = folder + "/crash.sock"
    let crashed = try Self.startServer(path)
    crashed.kill()
    var info = stat()
    #expect(lstat(path, &info) == 0, "SIGKILL leaves the socket file behind")
    let next = try Self.startServer(path)
    defer { next.kill() }
    let python = try findProgram("python3")
    let result = try ChildProcess.run(
      python, ["-c", Self.pythonClient, path], stdin: Array("after the crash".utf8), timeout: Timeouts.io)
    #expect(result.stdout == Array("after the crash".utf8), "python3: \(result.stderr)")
  }

  @Test("--udp with --unix is a usage error")
  func udpAndUnix() throws {
    let result = try ChildProcess.run(try TwineExecutable.path(), ["echo", "--udp", "--unix", "/tmp/x.sock"])
    #expect(result.termination.isFailure)
    #expect(result.stderr.contains("--udp and --unix cannot be used together"), "stderr: \(result.stderr)")
    #expect(result.stdout.isEmpty)
  }
}
