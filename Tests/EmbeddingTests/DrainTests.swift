import Glibc
import LoopbackTestSupport
import Synchronization
import Testing
import TutorialServers

@testable import Twine

/// `Reactor.drain`: listeners closed at once, protocols told, connections left to finish
/// until the deadline, the rest cut. Plain blocking clients on their own threads.
@Suite("Draining a reactor")
struct DrainTests {
  /// Echoes, and on the drain says "bye\n" and closes.
  final class Polite: Protocol {
    override func dataReceived(_ data: RawSpan) { transport.write(data) }
    override func connectionDraining() {
      transport.write(Array("bye\n".utf8))
      transport.loseConnection()
    }
  }

  /// The errno of one plain connect to 127.0.0.1:`port` (0: connected).
  static func connectError(port: Int) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    let code = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 ? 0 : errno
      }
    }
    return code
  }

  /// Connects, echoes "hi" (so the server has the connection open), returns the socket.
  static func servedClient(port: Int) -> Int32? {
    guard let fd = RawSockets.connect(port: port) else { return nil }
    RawSockets.setReceiveTimeout(fd, seconds: 20)
    guard RawSockets.sendAll(fd, Array("hi".utf8)), RawSockets.receive(fd, count: 2) == Array("hi".utf8) else {
      close(fd)
      return nil
    }
    return fd
  }

  @Test("the drain closes the listener at once, tells each protocol, and ends when they have closed")
  func politeProtocolsFinish() throws {
    let reactor = try Reactor()
    let factory = Factory(Polite.self)
    let port = try listen(reactor, factory)
    let result = Mutex<DrainResult?>(nil)
    let seen = Mutex<(goodbyes: [[UInt8]], refused: Int32)>(([], -1))
    let door = reactor.crossThread
    nonisolated(unsafe) let unsafeReactor = reactor
    let peer = startThread {
      let clients = (0..<2).compactMap { _ in Self.servedClient(port: port) }
      door.callFromThread {
        unsafeReactor.drain(timeout: 5) { done in
          result.withLock { $0 = done }
          unsafeReactor.stop()
        }
      }
      // Each client reads the goodbye and the end of the stream; the listener was closed before.
      let goodbyes = clients.map { RawSockets.receive($0, count: 100) }
      let refused = Self.connectError(port: port)
      seen.withLock { $0 = (goodbyes, refused) }
      for fd in clients { close(fd) }
    }
    run(reactor)
    pthread_join(peer, nil)
    let (goodbyes, refused) = seen.withLock { $0 }
    #expect(goodbyes == [Array("bye\n".utf8), Array("bye\n".utf8)], "told, and closed after their goodbye")
    #expect(refused == ECONNREFUSED, "nothing listens after the drain began: \(String(cString: strerror(refused)))")
    let done = try #require(result.withLock { $0 })
    #expect(done.connections == 2 && done.cut == 0, "\(done)")
    #expect(done.seconds < 5, "ended when the connections closed, before the deadline: \(done)")
    #expect(!reactor.isDraining && reactor.ports.isEmpty && factory.counters.live == 0)
  }

  @Test("a transfer in progress finishes during the drain; a connection that never finishes is cut at the deadline")
  func transferFinishesIdleIsCut() throws {
    let reactor = try Reactor()
    let factory = Factory(Echo.self)
    let port = try listen(reactor, factory)
    let message = pattern(4 << 20, seed: 7)
    let result = Mutex<DrainResult?>(nil)
    let seen = Mutex<(echoed: [UInt8], idleEnd: Int, idleAfter: Double)>(([], -1, 0))
    let door = reactor.crossThread
    nonisolated(unsafe) let unsafeReactor = reactor
    let peer = startThread {
      guard let idle = Self.servedClient(port: port), let busy = RawSockets.connect(port: port) else { return }
      RawSockets.setReceiveTimeout(busy, seconds: 20)
      let writer = startThread { _ = RawSockets.sendAll(busy, message) }
      var echoed = RawSockets.receive(busy, count: message.count / 4)  // mid-transfer
      let began = Self.monotonic()
      door.callFromThread {
        unsafeReactor.drain(timeout: 3) { done in
          result.withLock { $0 = done }
          unsafeReactor.stop()
        }
      }
      echoed += RawSockets.receive(busy, count: message.count - echoed.count)
      pthread_join(writer, nil)
      close(busy)  // finished: the busy one is done
      var byte: UInt8 = 0
      let end = recv(idle, &byte, 1, 0)
      let after = Self.monotonic() - began
      close(idle)
      seen.withLock { $0 = (echoed, end, after) }
    }
    run(reactor)
    pthread_join(peer, nil)
    let (echoed, idleEnd, idleAfter) = seen.withLock { $0 }
    #expect(echoed.count == message.count && echoed == message, "every byte sent arrived back")
    #expect(idleEnd == 0, "the idle client read the end of the stream (FIN)")
    #expect(idleAfter > 2, "cut at the deadline, not before: \(idleAfter) s")
    let done = try #require(result.withLock { $0 })
    #expect(done.connections == 2 && done.cut == 1, "\(done)")
    #expect(factory.counters.bytesIn == message.count + 2)
  }

  @Test("a drain asked for during one waits for the same end; its own timeout is ignored")
  func secondCallJoins() throws {
    let reactor = try Reactor()
    let factory = Factory(Echo.self)
    let port = try listen(reactor, factory)
    let ends = Mutex<[DrainResult]>([])
    let door = reactor.crossThread
    nonisolated(unsafe) let unsafeReactor = reactor
    let peer = startThread {
      guard let client = Self.servedClient(port: port) else { return }
      door.callFromThread {
        unsafeReactor.drain(timeout: 0.5) { done in ends.withLock { $0.append(done) } }
        unsafeReactor.drain(timeout: 0) { done in
          ends.withLock { $0.append(done) }
          unsafeReactor.stop()
        }
      }
      var byte: UInt8 = 0
      _ = recv(client, &byte, 1, 0)
      close(client)
    }
    run(reactor)
    pthread_join(peer, nil)
    let results = ends.withLock { $0 }
    #expect(results.count == 2 && results.first == results.last, "both heard the same end: \(results)")
    #expect(results.first?.cut == 1 && results.first?.connections == 1)
    #expect((results.first?.seconds ?? 0) >= 0.4, "the first drain's deadline held")
  }

  @Test("a connection that opens during the drain (an adopted socket) is told at once")
  func openedDuringDrainIsTold() throws {
    let reactor = try Reactor()
    let factory = Factory(Polite.self)
    let (client, server) = try #require(RawSockets.connectedPair())
    defer { close(client) }
    var result: DrainResult?
    let idle = try #require(RawSockets.connectedPair())  // keeps the drain going
    defer { close(idle.client) }
    try reactor.adoptStreamSocket(idle.server, factory: Factory(Echo.self))
    reactor.drain(timeout: 0.5) { done in
      result = done
      reactor.stop()
    }
    #expect(reactor.isDraining)
    try reactor.adoptStreamSocket(server, factory: factory)
    run(reactor)
    RawSockets.setReceiveTimeout(client, seconds: 20)
    #expect(RawSockets.receive(client, count: 100) == Array("bye\n".utf8), "told right after connectionMade")
    #expect(result?.cut == 1, "only the idle one was cut: \(String(describing: result))")
  }

  private static func monotonic() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
  }
}
