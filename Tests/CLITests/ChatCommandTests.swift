import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `twine chat` with real TCP clients.
@Suite("twine chat with real clients")
struct ChatCommandTests {
  static func expectLine(_ client: TCPClient, _ line: String, sourceLocation: SourceLocation = #_sourceLocation) throws
  {
    let got = String(decoding: try client.read(count: line.utf8.count + 2), as: UTF8.self)
    #expect(got == line + "\r\n", sourceLocation: sourceLocation)
  }

  @Test("a line from A reaches B, not A; /nick renames; /quit says bye and closes")
  func twoClients() throws {
    let server = try TwineServer(["chat", "--port", "0"])
    defer { server.kill() }
    let a = try TCPClient.connect(port: server.port)
    try Self.expectLine(a, "* welcome, guest-1; /nick NAME to rename, /quit to leave")
    let b = try TCPClient.connect(port: server.port)
    try Self.expectLine(b, "* welcome, guest-2; /nick NAME to rename, /quit to leave")
    try Self.expectLine(a, "* guest-2 joined")

    try a.send("hello from A\r\n")
    try Self.expectLine(b, "<guest-1> hello from A")
    #expect(!a.isReadable(timeout: 0.3), "the sender got its own line back")

    try a.send("/nick alice\r\n")
    try Self.expectLine(a, "* you are now alice")
    try Self.expectLine(b, "* guest-1 is now alice")
    try b.send("/nick alice\r\nhi alice\r\n")
    try Self.expectLine(b, "! nick alice is taken")
    try Self.expectLine(a, "<guest-2> hi alice")

    try a.send("/quit\r\n")
    let (rest, end) = try a.readToEnd()
    #expect(String(decoding: rest, as: UTF8.self) == "* bye\r\n")
    #expect(end == .eof)
    try Self.expectLine(b, "* alice left")

    server.send(SIGTERM)
    #expect(server.waitForExit() == .exited(0), "stderr: \(server.stderrText)")
  }

  @Test("--idle-timeout drops a silent client with a goodbye line")
  func idleTimeout() throws {
    let server = try TwineServer(["chat", "--port", "0", "--idle-timeout", "1"])
    defer { server.kill() }
    let client = try TCPClient.connect(port: server.port)
    let (bytes, end) = try client.readToEnd(timeout: Timeouts.io)
    #expect(
      String(decoding: bytes, as: UTF8.self)
        == "* welcome, guest-1; /nick NAME to rename, /quit to leave\r\n* idle for 1 s, bye\r\n")
    #expect(end == .eof)
  }

  @Test("twine chat --help lists its options")
  func help() throws {
    let result = try ChildProcess.run(try TwineExecutable.path(), ["chat", "--help"])
    #expect(result.termination == .exited(0))
    let text = String(decoding: result.stdout, as: UTF8.self)
    for option in ["--port", "--interface", "--idle-timeout", "--max-line-length", "--max-pending-bytes"] {
      #expect(text.contains(option), "missing \(option): \(text)")
    }
  }
}
