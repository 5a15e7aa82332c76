import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Accepting when the server is out of file descriptors (EMFILE): it must back off
/// instead of spinning on a listening socket that stays readable, keep serving,
/// and take connections again once descriptors are free.
@Suite("twine echo under file-descriptor exhaustion")
struct FDExhaustionTests {
  static let serverFileLimit = 64
  static let clientCount = 200

  @Test("an accept storm past RLIMIT_NOFILE neither spins a core nor kills the listener")
  func acceptStormWithFewDescriptors() throws {
    let ourLimit = raiseOpenFileLimit()
    try #require(ourLimit >= Self.clientCount + 64, "this test process may open only \(ourLimit) files")

    let server = try TwineServer(
      ["echo", "--port", "0", "--max-connections", "100000"], openFileLimit: Self.serverFileLimit)
    defer { server.kill() }

    var clients = try (0..<Self.clientCount).map { _ in try TCPClient.connect(port: server.port) }
    defer { for client in clients { client.close() } }

    // The server accepts until it has no descriptor left, then warns and pauses accepting.
    let warned = waitUntil(timeout: Timeouts.io) { server.stderrText.contains("accept failed") }
    try #require(warned, "no accept warning; stderr: \(server.stderrText)")

    // Connections accepted before the storm are still served.
    #expect(try clients[0].echo("served during the storm") == "served during the storm")

    // While the rest wait in the backlog, the server must not busy-loop on accept.
    let before = try cpuSeconds(of: server.pid)
    let started = monotonicSeconds()
    pause(1.0)
    let after = try cpuSeconds(of: server.pid)
    let elapsed = monotonicSeconds() - started
    let used = after - before
    // A server that backs off uses next to nothing (a failed accept every 100 ms); one
    // that retries accept at once spins a core. The bound is generous but catches a spin
    // even when a loaded machine gives the spinning server only part of a core.
    #expect(used / elapsed < 0.25, "the server used \(used) s of CPU in \(elapsed) s with accepts pending")
    #expect(server.isRunning, "stderr: \(server.stderrText)")

    // Free the server's descriptors; the listener must take new connections again.
    for client in clients { client.close() }
    clients = []
    let fresh = try TCPClient.connect(port: server.port)
    #expect(try fresh.echo("after the storm", timeout: Timeouts.io) == "after the storm")
    fresh.shutdownWrite()
    #expect(try fresh.readToEnd().end == .eof)

    let warnings = server.stderrText.components(separatedBy: "accept failed").count - 1
    #expect(warnings >= 1)
    #expect(warnings <= 20, "accept failure logged \(warnings) times: \(server.stderrText.prefix(2000))")

    server.send(SIGTERM)
    #expect(server.waitForExit() == .exited(0), "stderr: \(server.stderrText.suffix(2000))")
  }
}
