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

/// Counts the most connections its factory had open at once.
final class Peak: Protocol {
  nonisolated(unsafe) static var open = 0
  nonisolated(unsafe) static var peak = 0
  override func connectionMade() {
    Self.open += 1
    Self.peak = max(Self.peak, Self.open)
  }
  override func connectionLost(_ reason: CloseReason) { Self.open -= 1 }
}

@Suite("Policies over loopback", .serialized)
struct PolicyLoopbackTests {
  /// Opens 500 connections at once, 100 from each of 127.0.0.1 … 127.0.0.5, and runs the
  /// reactor until the factory has answered all of them.
  func flood(_ factory: Factory) throws -> [Int32] {
    Peak.open = 0
    Peak.peak = 0
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
    let factory = ConnectionLimitFactory(wrapping: Factory(Peak.self), maxConnections: 100)
    let fds = try flood(factory)
    defer { for fd in fds { close(fd) } }
    #expect(factory.counters.accepted == 100)
    #expect(factory.counters.refused == 400)
    #expect(Peak.peak == 100)
  }

  @Test("500 simultaneous connects from 5 addresses against 30 per peer: 150 served, 350 refused")
  func perPeerLimitUnderFlood() throws {
    let factory = ConnectionLimitFactory(wrapping: Factory(Peak.self), maxPerPeer: 30)
    let fds = try flood(factory)
    defer { for fd in fds { close(fd) } }
    #expect(factory.counters.accepted == 150)
    #expect(factory.counters.refused == 350)
    for peer in 1...5 { #expect(factory.openConnections(from: "127.0.0.\(peer)") == 0) }  // the reactor shut down
  }

  @Test("half a netstring then silence: the idle timeout drops that client; a well-behaved one is answered")
  func halfFrameThenSilence() throws {
    final class Answer: NetstringReceiver {
      nonisolated(unsafe) static var reasons: [CloseReason] = []
      nonisolated(unsafe) static var frames: [String] = []
      override func stringReceived(_ string: RawSpan) {
        Self.frames.append(string.utf8String)
        sendString("ok")
      }
      override func connectionLost(_ reason: CloseReason) { Self.reasons.append(reason) }
    }
    Answer.reasons = []
    Answer.frames = []
    let reactor = try Reactor()
    let factory = TimeoutFactory(wrapping: Factory(Answer.self), timeout: 0.3)
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
      if !Answer.reasons.isEmpty { reactor.stop() }
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
    #expect(Answer.frames == ["hello"])
    #expect(Answer.reasons.first == .timedOut)
    var reply = [UInt8](repeating: 0, count: 16)
    let got = recv(good, &reply, reply.count, Int32(MSG_DONTWAIT))
    #expect(got == 5 && Array(reply[..<5]) == Array("2:ok,".utf8))
  }

  @Test("a client that connects and sends nothing is dropped by the idle timeout; others are served")
  func silentClientTimedOut() throws {
    final class Watch: Protocol {
      nonisolated(unsafe) static var reasons: [CloseReason] = []
      override func dataReceived(_ data: RawSpan) { transport.write(data) }
      override func connectionLost(_ reason: CloseReason) { Self.reasons.append(reason) }
    }
    Watch.reasons = []
    let reactor = try Reactor()
    let factory = TimeoutFactory(wrapping: Factory(Watch.self), timeout: 0.3)
    let port = try reactor.listenTCP(0, factory: factory, interface: "127.0.0.1").address.port
    let silent = connectFrom("127.0.0.1", to: port)
    defer { close(silent) }
    let poll = LoopingCall(reactor) { if Watch.reasons.count == 1 { reactor.stop() } }
    poll.start(interval: 0.02)
    let guardCall = reactor.callLater(10) { reactor.stop() }
    reactor.run()
    guardCall.cancel()
    #expect(Watch.reasons == [.timedOut])
    #expect(factory.counters.live == 0)
    var byte: UInt8 = 0
    #expect(recv(silent, &byte, 1, 0) <= 0)  // closed on the peer's side too
  }
}
