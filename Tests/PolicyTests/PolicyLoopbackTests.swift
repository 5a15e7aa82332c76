import Glibc
import Testing
import TutorialServers
import Twine
import TwineProtocols

/// A non-blocking TCP connect to 127.0.0.1:`port` from `source` (any 127.x.y.z address is loopback).
func connectFrom(_ source: String, to port: Int) -> Int32 {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue), 0)
  func address(_ host: String, _ port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr(host)
    return address
  }
  var local = address(source, 0)
  var remote = address("127.0.0.1", port)
  let length = socklen_t(MemoryLayout<sockaddr_in>.size)
  _ = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
  _ = withUnsafePointer(to: &remote) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
  }
  return fd
}

/// How many of a test's connections are open, and the most that were at once.
final class Tally {
  var open = 0
  var peak = 0

  /// A factory of `Peak`s that count into this tally.
  func factory() -> Factory {
    Factory { _ in
      let peak = Peak()
      peak.tally = self
      return peak
    }
  }
}

/// Counts its connection in its tally while it is open.
final class Peak: Protocol {
  var tally = Tally()
  override func connectionMade() {
    tally.open += 1
    tally.peak = max(tally.peak, tally.open)
  }
  override func connectionLost(_ reason: CloseReason) { tally.open -= 1 }
}

@Suite("Policies over loopback")
struct PolicyLoopbackTests {
  /// Opens 500 connections at once, 100 from each of 127.0.0.1 … 127.0.0.5, and runs the
  /// reactor until the factory has answered all of them.
  func flood(_ factory: Factory) throws -> [Int32] {
    let reactor = try Reactor()
    let port = try reactor.listenTCP(0, factory: factory, backlog: 1024, interface: "127.0.0.1").address.port
    var fds: [Int32] = []
    for round in 0..<100 {
      for peer in 1...5 { fds.append(connectFrom("127.0.0.\(peer)", to: port)) }
      _ = round
    }
    let poll = LoopingCall(reactor) {
      if factory.counters.accepted + factory.counters.refused >= 500 { reactor.stop() }
    }
    poll.start(interval: 0.01)
    let guardCall = reactor.callLater(30) { reactor.stop() }
    reactor.run()
    guardCall.cancel()
    return fds
  }

  @Test("500 simultaneous connects against a total limit of 100: 100 served, 400 refused")
  func totalLimitUnderFlood() throws {
    let tally = Tally()
    let factory = ConnectionLimitFactory(wrapping: tally.factory(), maxConnections: 100)
    let fds = try flood(factory)
    defer { for fd in fds { close(fd) } }
    #expect(factory.counters.accepted == 100)
    #expect(factory.counters.refused == 400)
    #expect(tally.peak == 100)
  }

  @Test("500 simultaneous connects from 5 addresses against 30 per peer: 150 served, 350 refused")
  func perPeerLimitUnderFlood() throws {
    let factory = ConnectionLimitFactory(wrapping: Tally().factory(), maxPerPeer: 30)
    let fds = try flood(factory)
    defer { for fd in fds { close(fd) } }
    #expect(factory.counters.accepted == 150)
    #expect(factory.counters.refused == 350)
    for peer in 1...5 { #expect(factory.openConnections(from: "127.0.0.\(peer)") == 0) }  // the reactor shut down
  }

  @Test("half a netstring then silence: the idle timeout drops that client; a well-behaved one is answered")
  func halfFrameThenSilence() throws {
    final class Log {
      var reasons: [CloseReason] = []
      var frames: [String] = []
    }
    final class Answer: NetstringReceiver {
      var log = Log()
      override func stringReceived(_ string: RawSpan) {
        log.frames.append(string.utf8String)
        sendString("ok")
      }
      override func connectionLost(_ reason: CloseReason) { log.reasons.append(reason) }
    }
    let log = Log()
    let answers = Factory { _ in
      let answer = Answer()
      answer.log = log
      return answer
    }
    let reactor = try Reactor()
    let factory = TimeoutFactory(wrapping: answers, timeout: 0.3)
    let port = try reactor.listenTCP(0, factory: factory, interface: "127.0.0.1").address.port
    let stalled = connectFrom("127.0.0.1", to: port)
    let good = connectFrom("127.0.0.1", to: port)
    defer {
      close(stalled)
      close(good)
    }
    var sentHalf = false
    let poll = LoopingCall(reactor) {
      if !sentHalf {
        sentHalf = true
        _ = "10:half".withCString { send(stalled, $0, 7, Int32(MSG_NOSIGNAL)) }
        _ = "5:hello,".withCString { send(good, $0, 8, Int32(MSG_NOSIGNAL)) }
      }
      if !log.reasons.isEmpty { reactor.stop() }
    }
    poll.start(interval: 0.02)
    var timedOut = false
    let guardCall = reactor.callLater(10) {
      timedOut = true
      reactor.stop()
    }
    reactor.run()
    guardCall.cancel()
    #expect(!timedOut)
    #expect(log.frames == ["hello"])
    #expect(log.reasons.first == .timedOut)
    var reply = [UInt8](repeating: 0, count: 16)
    let got = recv(good, &reply, reply.count, Int32(MSG_DONTWAIT))
    #expect(got == 5 && Array(reply[..<5]) == Array("2:ok,".utf8))
  }

  @Test("a client that connects and sends nothing is dropped by the idle timeout; others are served")
  func silentClientTimedOut() throws {
    final class Watch: Protocol {
      var onLost: (CloseReason) -> Void = { _ in }
      override func dataReceived(_ data: RawSpan) { transport.write(data) }
      override func connectionLost(_ reason: CloseReason) { onLost(reason) }
    }
    var reasons: [CloseReason] = []
    let watches = Factory { _ in
      let watch = Watch()
      watch.onLost = { reasons.append($0) }
      return watch
    }
    let reactor = try Reactor()
    let factory = TimeoutFactory(wrapping: watches, timeout: 0.3)
    let port = try reactor.listenTCP(0, factory: factory, interface: "127.0.0.1").address.port
    let silent = connectFrom("127.0.0.1", to: port)
    defer { close(silent) }
    let poll = LoopingCall(reactor) { if reasons.count == 1 { reactor.stop() } }
    poll.start(interval: 0.02)
    let guardCall = reactor.callLater(10) { reactor.stop() }
    reactor.run()
    guardCall.cancel()
    #expect(reasons == [.timedOut])
    #expect(factory.counters.live == 0)
    var byte: UInt8 = 0
    #expect(recv(silent, &byte, 1, 0) <= 0)  // closed on the peer's side too
  }
}
