import CLibevent
import Glibc
import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

/// An echo that moves its connection to buffered mode (through a rate limit) at a chosen point.
final class LimitedEcho: Protocol {
  var limit: RateLimit? = RateLimit(readBytesPerSecond: 1 << 30)
  var group: RateLimitGroup?
  var switchAfterFirstRead = false
  weak var pauseEachRead: Reactor?
  private var reads = 0

  override func connectionMade() {
    if !switchAfterFirstRead { throttle() }
  }

  /// Runs after the limit is set, with the transport (tests look at the connection's bufferevent).
  var afterThrottle: ((any Transport) throws -> Void)?

  private func throttle() {
    if let limit { transport.setRateLimit(limit) }
    if let group { transport.joinRateLimitGroup(group) }
    do { try afterThrottle?(transport) } catch { Issue.record(error) }
  }

  override func dataReceived(_ data: RawSpan) {
    transport.write(data)
    reads += 1
    if reads == 1 && switchAfterFirstRead { throttle() }
    if let reactor = pauseEachRead {
      transport.pauseProducing()
      reactor.callLater(0.001) { [weak self] in self?.transport.resumeProducing() }
    }
  }
}

// Not serialized: the rate tests check lower bounds only, which running beside others cannot break.
@Suite("Buffered mode and rate limits")
struct BufferedModeTests {
  /// Echoes `size` bytes through a LimitedEcho server that `configure` sets up; returns the
  /// client and the seconds it took.
  func echo(
    _ size: Int, clients count: Int = 1, configure: @escaping (LimitedEcho) -> Void = { _ in }
  ) throws -> (received: [[UInt8]], seconds: Double, server: Factory) {
    let reactor = try Reactor()
    let server = Factory { _ in
      let echo = LimitedEcho()
      configure(echo)
      return echo
    }
    let port = try listen(reactor, server)
    let message = pattern(size, seed: 9)
    let clients = ClientMaker()
    var done = 0
    clients.configure = { client in
      client.message = message
      client.expecting = message.count
      client.done = { _ in
        done += 1
        if done == count { reactor.stop() }
      }
    }
    let start = reactor.now
    for _ in 0..<count { reactor.connectTCP("127.0.0.1", port, factory: clients) }
    run(reactor, timeout: 60)
    #expect(server.counters.live == 0)
    for client in clients.clients { #expect(client.received == message) }
    return (clients.clients.map(\.received), reactor.now - start, server)
  }

  @Test("a connection reading through its bufferevent echoes 4 MiB intact")
  func bufferedEchoIsIntact() throws {
    let result = try echo(4 << 20)
    #expect(result.received.count == 1)
    #expect(result.server.counters.bytesIn == 4 << 20)
  }

  @Test("setRateLimit puts the connection's reads through its bufferevent, with libevent's token bucket on it")
  func rateLimitIsOnTheBufferevent() throws {
    final class Seen { var buffered = false; var readLimit = Int.max; var writeLimit = Int.max }
    let seen = Seen()
    let limit = RateLimit(readBytesPerSecond: 1 << 20, writeBytesPerSecond: 2 << 20)
    _ = try echo(64 << 10) { echo in
      echo.limit = limit
      echo.afterThrottle = { transport in
        let connection = try #require(transport as? TCPConnection)
        guard let bev = connection.output.bufferevent else {
          Issue.record("no bufferevent")
          return
        }
        seen.buffered = connection.reader.isBuffered
        seen.readLimit = bufferevent_get_read_limit(bev)
        seen.writeLimit = bufferevent_get_write_limit(bev)
      }
    }
    #expect(seen.buffered, "reads go through the bufferevent")
    // Without a limit libevent reports EV_SSIZE_MAX; with one, at most the bucket's burst.
    #expect(seen.readLimit <= 1 << 20)
    #expect(seen.writeLimit <= 2 << 20)
  }

  @Test("switching to buffered mode after the first read loses and repeats no byte")
  func switchMidStream() throws {
    _ = try echo(4 << 20) { $0.switchAfterFirstRead = true }
  }

  @Test("pausing after every read in buffered mode still delivers every byte, in order")
  func pauseInBufferedMode() throws {
    let reactor = try Reactor()
    let server = Factory { [unowned reactor] _ in
      let echo = LimitedEcho()
      echo.pauseEachRead = reactor
      return echo
    }
    let port = try listen(reactor, server)
    let message = pattern(1 << 20, seed: 4)
    let clients = ClientMaker()
    clients.configure = { client in
      client.message = message
      client.expecting = message.count
      client.done = { _ in reactor.stop() }
    }
    reactor.connectTCP("127.0.0.1", port, factory: clients)
    run(reactor, timeout: 60)
    #expect(clients.clients.first?.received == message)
  }

  @Test("a read rate limit slows the transfer down (never faster than the limit allows)")
  func readLimitSlowsDown() throws {
    // 256 KiB at 512 KiB/s with a 64 KiB burst: at least ~0.37 s; a lower bound only, so no flake.
    let result = try echo(256 << 10) { $0.limit = RateLimit(readBytesPerSecond: 512 << 10, burst: 64 << 10) }
    #expect(result.seconds > 0.3)
  }

  @Test("connections in one rate-limit group share its rate")
  func groupSharesRate() throws {
    // Three clients × 128 KiB through one 512 KiB/s group: at least ~0.6 s together.
    let group = RateLimitGroup(RateLimit(readBytesPerSecond: 512 << 10, burst: 64 << 10))
    let result = try echo(128 << 10, clients: 3) { echo in
      echo.limit = nil
      echo.group = group
    }
    #expect(result.received.count == 3)
    #expect(result.seconds > 0.5)
  }
}

@Suite("Closing throttled and queued connections")
struct ThrottledCloseTests {
  @Test("a client that sets a rate limit and closes in connectionMade ends cleanly")
  func rateLimitThenCloseInConnectionMade() throws {
    final class Quitter: Protocol {
      var onLost: (CloseReason) -> Void = { _ in }
      override func connectionMade() {
        transport.setRateLimit(RateLimit(readBytesPerSecond: 1000, writeBytesPerSecond: 1000))
        transport.write("bye")
        transport.loseConnection()
      }
      override func connectionLost(_ reason: CloseReason) { onLost(reason) }
    }
    var lost: [CloseReason] = []
    let quitters = {
      ClientFactory { _ in
        let quitter = Quitter()
        quitter.onLost = { lost.append($0) }
        return quitter
      }
    }
    let reactor = try Reactor()
    let server = Factory(Echo.self)
    let port = try listen(reactor, server)
    for _ in 0..<20 { reactor.connectTCP("127.0.0.1", port, factory: quitters()) }
    let poll = LoopingCall(reactor) { if lost.count == 20 && server.counters.live == 0 { reactor.stop() } }
    poll.start(interval: 0.02)
    run(reactor)
    #expect(lost == Array(repeating: .closedByUs, count: 20))
  }

  @Test("shutdown hands queued output to the kernel before closing")
  func shutdownFlushesQueue() throws {
    final class Flood: Protocol {
      override func connectionMade() { transport.write([UInt8](repeating: 0x41, count: 8 << 20)) }
    }
    let reactor = try Reactor()
    let port = try listen(reactor, Factory(Flood.self))
    let peer = silentPeer(port: port)
    defer { Glibc.close(peer) }
    reactor.callLater(0.3) { reactor.stop() }
    reactor.iterate(blocking: false)
    let settle = reactor.callLater(0.3) {}
    while settle.isActive { reactor.iterate() }
    // Take what the kernel holds; the rest waits in the server's queue.
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while recv(peer, &buffer, buffer.count, Int32(MSG_DONTWAIT)) > 0 {}
    reactor.shutdown()
    var after = 0
    while true {
      let n = recv(peer, &buffer, buffer.count, 0)
      if n <= 0 { break }
      after += n
    }
    #expect(after > 0, "nothing was flushed at shutdown")
  }
}
