import CLibevent
import Glibc
import Testing
import TutorialServers

@testable import Twine

/// One owner per fd (`DescriptorClaims`), listening on a socket the host bound, and pausing a port.
@Suite("Socket ownership")
struct OwnershipTests {
  @Test("adopting an fd a Twine connection owns throws EBUSY, on the same or another reactor; the first is left alone")
  func secondAdoptionRefused() throws {
    let (client, server) = try #require(RawSockets.connectedPair())
    defer { close(client) }
    let host = HostLoop(tickEvery: 0.01)
    let reactor = try Reactor(borrowing: host.base)
    let other = try Reactor(borrowing: host.base)
    defer {
      reactor.shutdown()
      other.shutdown()
      withExtendedLifetime(host) {}  // the host's base outlives the reactors on it
    }
    let factory = Factory(Echo.self)
    try reactor.adoptStreamSocket(server, factory: factory)
    for target in [reactor, other] {
      #expect(Self.cause { () throws(TwineError) in try target.adoptStreamSocket(server, factory: factory) } == EBUSY)
    }
    #expect(factory.counters.accepted == 1)
    #expect(RawSockets.sendAll(client, Array("still one owner".utf8)))
    #expect(host.run { factory.counters.bytesOut == 15 })
    #expect(RawSockets.receive(client, count: 15) == Array("still one owner".utf8))
    close(client)
    #expect(host.run { factory.counters.live == 0 })
    #expect(!DescriptorClaims.isClaimed(server), "the claim goes with the connection")
  }

  @Test("adoptListeningSocket serves a socket the host bound; pauseAccepting holds new peers until resumeAccepting")
  func listenOnHostSocketAndPause() throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    let port = try #require(RawSockets.bindLoopback(fd))
    let host = HostLoop(tickEvery: 0.01)
    let reactor = try Reactor(borrowing: host.base)
    defer {
      reactor.shutdown()
      withExtendedLifetime(host) {}  // the host's base outlives the reactor on it
    }
    let factory = Factory(Echo.self)
    #expect(listen(fd, 16) == 0)
    let listening = try reactor.adoptListeningSocket(fd, factory: factory)
    #expect(listening.address.port == port)
    listening.pauseAccepting()
    let client = try #require(RawSockets.connect(port: port))
    defer { close(client) }
    #expect(RawSockets.sendAll(client, Array("wait".utf8)))
    #expect(!host.run(timeout: 0.3) { factory.counters.accepted > 0 }, "paused: nothing accepted")
    listening.resumeAccepting()
    #expect(host.run { factory.counters.bytesOut == 4 })
    #expect(RawSockets.receive(client, count: 4) == Array("wait".utf8))
    let unbound = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(unbound) }
    #expect(
      Self.cause { () throws(TwineError) in try reactor.adoptListeningSocket(unbound, factory: factory) } == EINVAL)
  }

  /// The errno of the `cannotAdopt` error `body` throws; nil if it throws nothing or something else.
  static func cause(_ body: () throws(TwineError) -> Any?) -> Int32? {
    do {
      _ = try body()
      return nil
    } catch {
      guard case .cannotAdopt(_, let cause) = error else { return nil }
      return cause.code
    }
  }
}
