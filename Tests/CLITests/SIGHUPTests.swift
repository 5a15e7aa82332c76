import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// SIGHUP (a closed terminal, `kill -HUP`) only reloads TLS certificates (CertificateRotationTests): without
/// TLS it changes nothing; the UNIX socket file goes on every clean exit.
@Suite("twine and SIGHUP")
struct SIGHUPTests {
  @Test(
    "SIGHUP without TLS changes nothing: the server keeps serving; SIGTERM still exits 0",
    arguments: ["echo", "hello", "chat"])
  func ignored(command: String) throws {
    let server = try TwineServer([command, "--port", "0", "--drain-timeout", "0"])
    defer { server.kill() }
    server.send(SIGHUP)
    server.send(SIGHUP)
    pause(0.2)
    #expect(server.isRunning, "SIGHUP ended the server: \(String(describing: server.waitForExit(timeout: 0)))")
    let client = try TCPClient.connect(port: server.port)
    switch command {
    case "echo": #expect(try client.echo("after SIGHUP") == "after SIGHUP")
    case "hello": #expect(String(decoding: try client.readToEnd().bytes, as: UTF8.self).hasPrefix("Hello"))
    default:
      try client.send("/quit\r\n")
      #expect(try client.readToEnd().end == .eof)
    }
    server.send(SIGTERM)
    #expect(server.waitForExit() == .exited(0), "stderr: \(server.stderrText)")
  }

  @Test(
    "SIGHUP leaves the UNIX echo serving; SIGINT or SIGTERM then removes the socket file", arguments: [SIGINT, SIGTERM])
  func unixSocketRemoved(signal: Int32) throws {
    let folder = try UNIXEchoCommandTests.makeFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let path = folder + "/hup.sock"
    let server = try UNIXEchoCommandTests.startServer(path)
    defer { server.kill() }
    server.send(SIGHUP)
    pause(0.2)
    #expect(server.isRunning)
    let python = try findProgram("python3")
    let result = try ChildProcess.run(
      python, ["-c", UNIXEchoCommandTests.pythonClient, path], stdin: Array("after SIGHUP".utf8), timeout: Timeouts.io)
    #expect(result.stdout == Array("after SIGHUP".utf8), "python3: \(result.stderr)")
    server.send(signal)
    #expect(server.waitForExit() == .exited(0), "stderr: \(server.stderrText)")
    var info = stat()
    #expect(lstat(path, &info) != 0 && errno == ENOENT, "the socket file is removed on exit")
  }
}
