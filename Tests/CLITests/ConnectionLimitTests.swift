import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `twine echo --max-connections N`: the client past the limit is told so and closed.
@Suite("twine echo --max-connections")
struct ConnectionLimitTests {
  static let refusal = Array("Too many connections, try later".utf8)

  /// Half-closes `client` and waits for the server's close, so the server has
  /// counted it gone before the test goes on.
  static func finish(_ client: TCPClient) throws {
    client.shutdownWrite()
    _ = try client.readToEnd()
    client.close()
  }

  @Test("with --max-connections 3 and 4 clients at once, 3 echo and 1 gets exactly the refusal then EOF")
  func fourthClientIsRefused() throws {
    let server = try TwineServer(["echo", "--port", "0", "--max-connections", "3"])
    defer { server.kill() }

    // All four connect before any sends: the server accepts them in some order, and
    // the one that takes the count past 3 is refused without the client sending a byte.
    let clients = try (0..<4).map { _ in try TCPClient.connect(port: server.port) }
    let refusedIndex = try #require(
      waitUntilFirstReadable(clients, timeout: Timeouts.io), "no client was refused")
    let refused = clients[refusedIndex]
    let received = try refused.readToEnd()
    #expect(received.bytes == Self.refusal, "got \(printable(received.bytes))")
    #expect(received.end == .eof)
    refused.close()

    var served = 0
    for (index, client) in clients.enumerated() where index != refusedIndex {
      let message = "client \(index) is served"
      #expect(try client.echo(message) == message)
      served += 1
    }
    #expect(served == 3)

    // After every client is gone, a new one is served again.
    for (index, client) in clients.enumerated() where index != refusedIndex { try Self.finish(client) }
    let fresh = try TCPClient.connect(port: server.port)
    #expect(try fresh.echo("room again") == "room again")
    try Self.finish(fresh)

    server.send(SIGTERM)
    #expect(server.waitForExit() == .exited(0), "stderr: \(server.stderrText)")
    #expect(server.stderrText.contains("refused=1"), "stderr: \(server.stderrText)")
  }

  // (--max-connections 0 is a usage error now, see OptionRangeTests: a server that refuses everyone.)
  @Test("with --max-connections 1 and the slot taken, every other client gets exactly the refusal then EOF")
  func fullRefusesEveryoneElse() throws {
    let server = try TwineServer(["echo", "--port", "0", "--max-connections", "1"])
    defer { server.kill() }
    let holder = try TCPClient.connect(port: server.port)
    #expect(try holder.echo("holding the slot") == "holding the slot")
    for _ in 0..<3 {
      let client = try TCPClient.connect(port: server.port)
      let received = try client.readToEnd()
      #expect(received.bytes == Self.refusal, "got \(printable(received.bytes))")
      #expect(received.end == .eof)
    }
  }

  @Test("a refused client does not use up a slot: the limit holds after many refusals")
  func refusalsDoNotLeakSlots() throws {
    let server = try TwineServer(["echo", "--port", "0", "--max-connections", "1"])
    defer { server.kill() }
    let holder = try TCPClient.connect(port: server.port)
    #expect(try holder.echo("holding the slot") == "holding the slot")
    for _ in 0..<10 {
      let client = try TCPClient.connect(port: server.port)
      let received = try client.readToEnd()
      #expect(received.bytes == Self.refusal, "got \(printable(received.bytes))")
    }
    try Self.finish(holder)
    let next = try TCPClient.connect(port: server.port)
    #expect(try next.echo("my turn") == "my turn")
    let extra = try TCPClient.connect(port: server.port)
    #expect(try extra.readToEnd().bytes == Self.refusal)
  }
}

/// The index of the first of `clients` with something to read within `timeout`, or nil.
func waitUntilFirstReadable(_ clients: [TCPClient], timeout: Double) -> Int? {
  var found: Int?
  _ = waitUntil(timeout: timeout) {
    found = clients.firstIndex { $0.isReadable(timeout: 0) }
    return found != nil
  }
  return found
}
