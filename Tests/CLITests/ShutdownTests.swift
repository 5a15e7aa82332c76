import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// SIGINT and SIGTERM stop the server cleanly: connections closed, exit status 0.
@Suite("twine shutdown on signals")
struct ShutdownTests {
  @Test("an idle server exits 0 on the signal", arguments: [SIGINT, SIGTERM], ["echo", "hello"])
  func idleServerExitsZero(signal: Int32, command: String) throws {
    let server = try TwineServer([command, "--port", "0"])
    defer { server.kill() }
    server.send(signal)
    let termination = server.waitForExit()
    #expect(termination == .exited(0), "stderr: \(server.stderrText)")
    #expect(server.stderrText.contains("stopped"), "stderr: \(server.stderrText)")
  }

  @Test(
    "echo exits 0 on SIGINT, or SIGTERM with --drain-timeout 0, and a connected client sees its connection closed",
    arguments: [SIGINT, SIGTERM])
  func connectedClientIsClosed(signal: Int32) throws {
    let server = try TwineServer(["echo", "--port", "0", "--drain-timeout", "0"])
    defer { server.kill() }
    let idle = try TCPClient.connect(port: server.port)
    #expect(try idle.echo("still here?") == "still here?")  // accepted and served
    let other = try TCPClient.connect(port: server.port)
    #expect(try other.echo("me too") == "me too")

    server.send(signal)
    for client in [idle, other] {
      let rest = try client.readToEnd()
      #expect(rest.bytes.isEmpty, "unexpected bytes \(printable(rest.bytes))")
      #expect(rest.end == .eof || rest.end == .reset)
    }
    #expect(server.waitForExit() == .exited(0), "stderr: \(server.stderrText)")
    #expect(server.stderrText.contains("accepted=2"), "stderr: \(server.stderrText)")
  }

  @Test("after SIGINT the port is free again")
  func portIsReleased() throws {
    let server = try TwineServer(["echo", "--port", "0"])
    defer { server.kill() }
    let port = server.port
    server.send(SIGINT)
    #expect(server.waitForExit() == .exited(0), "stderr: \(server.stderrText)")
    // The same port can be listened on again at once (SO_REUSEADDR, listener closed).
    let again = try TwineServer(["echo", "--port", "\(port)"])
    defer { again.kill() }
    #expect(again.port == port)
    let client = try TCPClient.connect(port: port)
    #expect(try client.echo("again") == "again")
  }
}
