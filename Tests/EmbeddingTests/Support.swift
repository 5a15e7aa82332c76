// The loop and client helpers of Tests/TwineTests/Support.swift, for this target (test targets share no sources).
// Every file of this target imports CLibevent and Glibc together: mixing files that import
// Glibc alone with files that also import CLibevent hides Glibc's socket constants (SOCK_STREAM...)
// from the former, depending on how the compiler batches the files.
import CLibevent
import Glibc
import Testing

@testable import Twine

/// Runs `reactor` until something calls `stop()`, or fails the test after `timeout` seconds.
func run(_ reactor: Reactor, timeout: Double = 20, sourceLocation: SourceLocation = #_sourceLocation) {
  var timedOut = false
  let guardCall = reactor.callLater(timeout) {
    timedOut = true
    reactor.stop()
  }
  reactor.run()
  guardCall.cancel()
  #expect(!timedOut, "reactor timed out after \(timeout) s", sourceLocation: sourceLocation)
}

/// Deterministic test bytes: `count` bytes of a pattern that differs per `seed`.
func pattern(_ count: Int, seed: UInt8 = 0) -> [UInt8] {
  (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8 &+ Int(seed)) }
}

/// A client that sends `message` on connect, collects what comes back until it has
/// `expecting` bytes (then closes) or the server closes, and reports through `done`.
final class Client: Protocol {
  var message: [UInt8] = []
  var expecting = Int.max
  var received: [UInt8] = []
  var lostReason: CloseReason?
  var done: (Client) -> Void = { _ in }

  override func connectionMade() {
    if !message.isEmpty { transport.write(message) }
  }

  override func dataReceived(_ data: RawSpan) {
    data.withUnsafeBytes { received.append(contentsOf: $0) }
    if received.count >= expecting { transport.loseConnection() }
  }

  override func connectionLost(_ reason: CloseReason) {
    lostReason = reason
    done(self)
  }
}

/// A client factory that configures each `Client` and records failures.
final class ClientMaker: ClientFactory {
  var configure: (Client) -> Void = { _ in }
  var failed: [CloseReason] = []
  var onFailure: (CloseReason) -> Void = { _ in }
  var clients: [Client] = []

  init() { super.init(Client.self) }

  override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    let client = Client()  // no `factory`: the clients list would make a cycle
    configure(client)
    clients.append(client)
    return client
  }

  override func clientConnectionFailed(_ connector: any Connector, reason: CloseReason) {
    failed.append(reason)
    onFailure(reason)
  }
}

/// A server listening on an ephemeral loopback port.
func listen(_ reactor: Reactor, _ factory: Factory) throws -> Int {
  try reactor.listenTCP(0, factory: factory, interface: "127.0.0.1").address.port
}
