import Foundation
import Testing
import Twine
import TwineProtocols

/// Echoes lines; records the most it ever held and how its connection ended.
final class LineEcho: LineReceiver {
  var keepOpen = false
  var maxBuffered = 0
  var exceeded = 0

  override func dataReceived(_ data: RawSpan) {
    super.dataReceived(data)
    maxBuffered = max(maxBuffered, bufferedByteCount)
  }

  override func lineReceived(_ line: RawSpan) { sendLine(line) }

  override func lineLengthExceeded(_ length: Int) {
    exceeded += 1
    if keepOpen { sendLine("too long") } else { super.lineLengthExceeded(length) }
  }

  override func connectionLost(_ reason: CloseReason) {
    (factory as? Recording)?.lost(self, reason)
  }
}

/// Echoes netstrings.
final class NetstringEcho: NetstringReceiver {
  override func stringReceived(_ string: RawSpan) { sendString(string) }
  override func connectionLost(_ reason: CloseReason) { (factory as? Recording)?.lost(self, reason) }
}

/// Echoes 4-byte-prefixed strings.
final class Int32Echo: Int32StringReceiver {
  override func stringReceived(_ string: RawSpan) { try? sendString(string) }
  override func connectionLost(_ reason: CloseReason) { (factory as? Recording)?.lost(self, reason) }
}

/// A server factory that configures its protocols and records how each connection ended.
final class Recording: Factory {
  var configure: (Protocol) -> Void = { _ in }
  var reasons: [CloseReason] = []
  var closed: [Protocol] = []
  var onLost: (Protocol, CloseReason) -> Void = { _, _ in }

  override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    let proto = super.buildProtocol(peer)
    if let proto { configure(proto) }
    return proto
  }

  func lost(_ proto: Protocol, _ reason: CloseReason) {
    reasons.append(reason)
    closed.append(proto)
    proto.factory = nil  // the list would otherwise make a cycle
    onLost(proto, reason)
  }
}

// Serialized: two tests measure the process's RSS while 100 MiB go by; the others would inflate it.
@Suite("Framing against hostile peers over loopback", .serialized)
struct HostileLoopbackTests {
  static let hundredMiB = 100 << 20

  @Test("a 100 MiB line without delimiter is refused with a protocolError, without being held; the server serves on")
  func hugeLineClosed() throws {
    let reactor = try Reactor()
    let server = Recording(LineEcho.self)
    let port = try reactor.listenTCP(0, factory: server, interface: "127.0.0.1").address.port
    let before = residentBytes()
    var good: Client?
    server.onLost = { _, reason in
      guard case .protocolError = reason else { return }
      // The hostile connection is gone: a new client is served as usual.
      let maker = OneClient { client in
        client.message = Array("hello\r\n".utf8)
        client.expecting = 7
        client.done = { _ in reactor.stop() }
      }
      good = maker.client
      reactor.connectTCP("127.0.0.1", port, factory: maker)
    }
    let flood = SocketFlood(port: port, filler: UInt8(ascii: "A"), count: Self.hundredMiB)
    run(reactor)
    let growth = residentBytes() - before
    #expect(server.reasons.first == .protocolError("line longer than 16384 bytes"))
    let echo = server.closed.first as? LineEcho
    #expect(echo?.exceeded == 1)
    #expect((echo?.maxBuffered ?? .max) <= 16384 + 1)
    #expect(good?.received == Array("hello\r\n".utf8))
    #expect(growth < 32 << 20, "resident memory grew by \(growth >> 20) MiB")
    _ = waitFor { flood.isFinished }
  }

  @Test(
    "a server that keeps the connection reads all 100 MiB of a long line without holding it, then answers the next line"
  )
  func hugeLineSkipped() throws {
    let reactor = try Reactor()
    let server = Recording(LineEcho.self)
    server.configure = { ($0 as? LineEcho)?.keepOpen = true }
    server.onLost = { _, _ in reactor.stop() }
    let port = try reactor.listenTCP(0, factory: server, interface: "127.0.0.1").address.port
    let before = residentBytes()
    let reply = Array("too long\r\nafter\r\n".utf8)
    let flood = SocketFlood(
      port: port, filler: UInt8(ascii: "B"), count: Self.hundredMiB, suffix: Array("\r\nafter\r\n".utf8),
      replyLength: reply.count)
    run(reactor, timeout: 120)
    let growth = residentBytes() - before
    #expect(waitFor { flood.isFinished })
    #expect(flood.reply == reply)
    #expect(server.counters.bytesIn >= Self.hundredMiB)
    let echo = server.closed.first as? LineEcho
    #expect(echo?.exceeded == 1)
    #expect((echo?.maxBuffered ?? .max) <= 16384 + 1)
    #expect(server.reasons == [.closedByPeer])
    #expect(growth < 32 << 20, "resident memory grew by \(growth >> 20) MiB")
  }

  @Test(
    "netstrings: a 2^40 length and garbage are closed at once with protocolErrors; a good client beside them is served")
  func hostileNetstrings() throws {
    let reactor = try Reactor()
    let server = Recording(NetstringEcho.self)
    let port = try reactor.listenTCP(0, factory: server, interface: "127.0.0.1").address.port
    var lost = 0  // not server.reasons: the closure would hold its own factory
    server.onLost = { _, _ in
      lost += 1
      if lost == 3 { reactor.stop() }
    }
    let makers = [
      Array("1099511627776:".utf8),  // then waits: the server must not wait for the string
      Array("GET / HTTP/1.0\r\n\r\n".utf8),
      Array("5:hello,".utf8),
    ].map { message in
      OneClient { client in
        client.message = message
        client.expecting = message == Array("5:hello,".utf8) ? 8 : .max
      }
    }
    for maker in makers { reactor.connectTCP("127.0.0.1", port, factory: maker) }
    run(reactor, timeout: 30)
    #expect(makers[2].client.received == Array("5:hello,".utf8))
    #expect(makers[0].client.received.isEmpty && makers[1].client.received.isEmpty)
    #expect(
      Set(server.reasons) == [
        .protocolError("netstring longer than 99999 bytes"),
        .protocolError("netstring length must be decimal digits, got byte 0x47"),
        .closedByPeer,
      ])
  }

  @Test("Int32 strings: a 4 GiB prefix is closed at once; a good client beside it is served")
  func hostileInt32() throws {
    let reactor = try Reactor()
    let server = Recording(Int32Echo.self)
    let port = try reactor.listenTCP(0, factory: server, interface: "127.0.0.1").address.port
    var lost = 0  // not server.reasons: the closure would hold its own factory
    server.onLost = { _, _ in
      lost += 1
      if lost == 2 { reactor.stop() }
    }
    let good: [UInt8] = [0, 0, 0, 2, 104, 105]
    let makers = [[0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3], good].map { message in
      OneClient { client in
        client.message = message
        client.expecting = message == good ? good.count : .max
      }
    }
    for maker in makers { reactor.connectTCP("127.0.0.1", port, factory: maker) }
    run(reactor, timeout: 30)
    #expect(makers[1].client.received == good)
    #expect(Set(server.reasons) == [.protocolError("string of 4294967295 bytes is longer than 99999"), .closedByPeer])
  }

  /// Polls `condition` for up to 20 s.
  @discardableResult
  func waitFor(_ condition: () -> Bool) -> Bool {
    for _ in 0..<2000 {
      if condition() { return true }
      usleep(10_000)
    }
    return condition()
  }
}
