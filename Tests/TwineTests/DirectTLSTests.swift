import Glibc
import LoopbackTestSupport
import Testing

@testable import Twine

/// The direct TLS path of a TLS port's connections (OpenSSL driven on the connection's own
/// read event): what leaves on the wire, what arrives together, flow control, hostile records.
/// The peer is ``RawTLSPeer`` (OpenSSL by hand) or Twine's own TLS client.
@Suite("Direct TLS path")
struct DirectTLSTests {
  func listenTLS(_ reactor: Reactor, _ factory: Factory) throws -> Int {
    try reactor.listenSSL(0, factory: factory, tls: TestCertificates.server(), interface: "127.0.0.1").address.port
  }

  @Test("a 64 KiB write leaves as four full-size records (16 KiB of plaintext each)")
  func fullSizeRecords() throws {
    let reactor = try Reactor()
    defer { reactor.shutdown() }  // closes what is left: the closures here capture the reactor
    let server = RecorderFactory()
    server.configure = { recorder in recorder.onMade = { $0.transport.write(pattern(64 << 10, seed: 3)) } }
    let port = try listenTLS(reactor, server)
    let peer = RawTLSPeer(port: port)
    runUntil(reactor) { peer.pump() }
    // TLS 1.3 record overhead: the inner content type (1) and the AEAD tag (16).
    let full = (16 << 10) + 17
    runUntil(reactor) {
      peer.readRaw()
      return peer.records.filter { $0.length > 1024 }.count >= 4 || peer.ended
    }
    let data = peer.records.filter { $0.length > 1024 }  // the session tickets are a few hundred bytes
    #expect(data.count == 4, "\(peer.records)")
    #expect(data.allSatisfy { $0.type == 23 && $0.length == full }, "\(peer.records)")
  }

  @Test("small writes made in one callback leave together as one record")
  func smallWritesCoalesced() throws {
    let reactor = try Reactor()
    defer { reactor.shutdown() }  // closes what is left: the closures here capture the reactor
    let server = RecorderFactory()
    server.configure = { recorder in
      recorder.onData = { proto in
        for index in 0..<10 { proto.transport.write(pattern(100, seed: UInt8(index))) }
      }
    }
    let port = try listenTLS(reactor, server)
    let peer = RawTLSPeer(port: port)
    runUntil(reactor) { peer.pump() }
    peer.sendRecordsInOneSegment([Array("go".utf8)])
    runUntil(reactor) {
      peer.readRaw()
      return peer.records.contains { $0.length == 1000 + 17 } || peer.records.contains { $0.length == 100 + 17 }
    }
    #expect(peer.records.filter { $0.length == 1000 + 17 }.count == 1, "\(peer.records)")
    #expect(!peer.records.contains { $0.length == 100 + 17 }, "\(peer.records)")
  }

  @Test("several records arriving in one segment are all delivered without another packet from the peer")
  func recordsInOneSegmentNoStall() throws {
    let reactor = try Reactor()
    defer { reactor.shutdown() }  // closes what is left: the closures here capture the reactor
    let server = RecorderFactory()
    let port = try listenTLS(reactor, server)
    let peer = RawTLSPeer(port: port)
    runUntil(reactor) { peer.pump() }
    let pieces = (0..<6).map { pattern(1000 + $0, seed: UInt8($0)) }
    peer.sendRecordsInOneSegment(pieces)
    let expected = pieces.flatMap { $0 }
    runUntil(reactor, timeout: 5) { (server.built.first?.received.count ?? 0) >= expected.count }
    #expect(server.built.first?.received.count == expected.count)
    #expect(firstDifference(server.built.first?.received ?? [], expected) == nil)
  }

  @Test("the same, to a protocol that pauses after each delivery and resumes from the loop")
  func recordsInOneSegmentPausedReader() throws {
    let reactor = try Reactor()
    defer { reactor.shutdown() }  // closes what is left: the closures here capture the reactor
    let server = RecorderFactory()
    server.configure = { recorder in
      recorder.onData = { proto in
        proto.transport.pauseProducing()
        reactor.callLater(0.01) { proto.transport.resumeProducing() }
      }
    }
    let port = try listenTLS(reactor, server)
    let peer = RawTLSPeer(port: port)
    runUntil(reactor) { peer.pump() }
    // Eight full records (128 KiB) in one go: more than one read of OpenSSL's 64 KiB buffer.
    let pieces = (0..<8).map { pattern(16 << 10, seed: UInt8(40 + $0)) }
    peer.sendRecordsInOneSegment(pieces)
    let expected = pieces.flatMap { $0 }
    runUntil(reactor, timeout: 5) { (server.built.first?.received.count ?? 0) >= expected.count }
    #expect(firstDifference(server.built.first?.received ?? [], expected) == nil)
  }

  @Test(
    "16 MiB to a paused reader through a producer, then loseConnection: all arrives, the queue stays under the hard limit"
  )
  func bulkToPausedReaderBounded() throws {
    let reactor = try Reactor()
    defer { reactor.shutdown() }  // closes what is left: the closures here capture the reactor
    let total = 16 << 20
    let limits = WriteBufferLimits(lowWater: 64 << 10, highWater: 256 << 10, hardLimit: 1 << 20)
    final class Pump: PushProducer {
      let transport: any Transport
      let total: Int
      var sent = 0
      var paused = false
      var maxQueued = 0
      init(_ transport: any Transport, total: Int) {
        self.transport = transport
        self.total = total
      }
      func pauseProducing() { paused = true }
      func resumeProducing() {
        paused = false
        produce()
      }
      func stopProducing() { paused = true }
      func produce() {
        while !paused && sent < total {
          ChunkedStream.writeChunk(sent / ChunkedStream.chunkSize, of: total, to: transport)
          sent += min(ChunkedStream.chunkSize, total - sent)
          maxQueued = max(maxQueued, transport.pendingWriteCount)
        }
        if sent == total {
          transport.unregisterProducer()
          transport.loseConnection()
        }
      }
    }
    var pump: Pump?
    let server = RecorderFactory()
    server.configure = { recorder in
      recorder.onMade = { proto in
        proto.transport.writeBufferLimits = limits
        let made = Pump(proto.transport, total: total)
        pump = made
        proto.transport.registerProducer(made)
        made.produce()
      }
    }
    let port = try listenTLS(reactor, server)
    let clients = RecorderClientFactory()
    clients.configure = { client in
      client.checker = StreamChecker()
      client.onMade = { proto in
        proto.transport.pauseProducing()
        reactor.callLater(0.5) { proto.transport.resumeProducing() }
      }
      client.onLost = { _ in reactor.stop() }
    }
    try reactor.connectSSL("localhost", port, factory: clients, tls: TestCertificates.trustingClient())
    run(reactor, timeout: 60)
    let client = try #require(clients.built.first)
    #expect(client.checker?.count == total)
    #expect(client.checker?.firstMismatch == nil)
    #expect(client.lostReason == .closedByPeer)
    #expect(server.built.first?.lostReason == .closedByUs)
    let maxQueued = try #require(pump?.maxQueued)
    #expect(maxQueued <= limits.hardLimit, "queued \(maxQueued)")
    #expect(maxQueued > limits.highWater, "the reader's pause must have filled the queue past the high-water mark")
  }

  @Test("a rate limit set after the handshake moves the connection onto an OpenSSL bufferevent; the echo stays whole")
  func rateLimitMovesToBufferevent() throws {
    let reactor = try Reactor()
    defer { reactor.shutdown() }  // closes what is left: the closures here capture the reactor
    let server = RecorderFactory()
    server.configure = { recorder in
      recorder.echoes = true
      recorder.onMade = {
        $0.transport.setRateLimit(RateLimit(readBytesPerSecond: 4 << 20, writeBytesPerSecond: 4 << 20))
      }
    }
    let port = try listenTLS(reactor, server)
    let message = pattern(300_000, seed: 9)
    let clients = RecorderClientFactory()
    clients.configure = { client in
      client.onMade = { $0.transport.write(message) }
      client.onData = { if $0.received.count >= message.count { $0.transport.loseConnection() } }
      client.onLost = { _ in reactor.stop() }
    }
    try reactor.connectSSL("localhost", port, factory: clients, tls: TestCertificates.trustingClient())
    run(reactor, timeout: 30)
    let connection = try #require(server.built.first?.transport as? TCPConnection)
    #expect(connection.tlsStream == nil && connection.tls != nil, "on a bufferevent now")
    #expect(firstDifference(clients.built.first?.received ?? [], message) == nil)
    #expect(clients.built.first?.lostReason == .closedByUs)
  }

  @Test(
    "no half-close over TLS: loseWriteConnection flushes and closes with close_notify; readConnectionLost is never told"
  )
  func noHalfClose() throws {
    final class HalfServer: Protocol, HalfCloseable {
      var readLost = false
      var lost: CloseReason?
      override func connectionMade() {
        transport.write("bye")
        transport.loseWriteConnection()
      }
      func readConnectionLost() { readLost = true }
      override func connectionLost(_ reason: CloseReason) { lost = reason }
    }
    let reactor = try Reactor()
    var servers: [HalfServer] = []
    let server = Factory { _ in
      let made = HalfServer()
      servers.append(made)
      return made
    }
    let port = try listenTLS(reactor, server)
    let clients = RecorderClientFactory()
    clients.configure = { client in client.onLost = { _ in reactor.stop() } }
    try reactor.connectSSL("localhost", port, factory: clients, tls: TestCertificates.trustingClient())
    run(reactor)
    #expect(clients.built.first?.received == Array("bye".utf8))
    #expect(clients.built.first?.lostReason == .closedByPeer, "close_notify came after the bytes")
    #expect(servers.first?.lost == .closedByUs)
    #expect(servers.first?.readLost == false)
  }

  @Test("garbage records after the handshake end that connection with tlsFailed; nothing else happens")
  func garbageAfterHandshake() throws {
    let reactor = try Reactor()
    defer { reactor.shutdown() }  // closes what is left: the closures here capture the reactor
    let server = RecorderFactory()
    let port = try listenTLS(reactor, server)
    var generator = SystemRandomNumberGenerator()
    var cases: [[UInt8]] = [
      [23, 3, 3, 0, 32] + (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) },  // a bad MAC
      [23, 3, 3, 0xff, 0xff] + [UInt8](repeating: 0, count: 64),  // too long
      [99, 3, 3, 0, 4, 1, 2, 3, 4],  // no such record type
      [23, 3, 3, 0, 40, 1, 2],  // truncated, then end of stream
      [0x16, 3, 3, 0, 4, 1, 0, 0, 0],  // a handshake message after the handshake
    ]
    for _ in 0..<10 {
      cases.append(
        (0..<Int.random(in: 1...300, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }
    for (index, garbage) in cases.enumerated() {
      let peer = RawTLSPeer(port: port)
      runUntil(reactor) { peer.pump() && server.built.count == index + 1 }
      peer.sendRaw(garbage)
      peer.shutWrite()
      runUntil(reactor) { server.built[index].lostReason != nil }
      let reason = server.built[index].lostReason
      #expect(reason?.tlsText != nil, "case \(index) \(garbage.prefix(8)): \(String(describing: reason))")
      #expect(server.built[index].received.isEmpty)
    }
    #expect(reactor.connections.isEmpty)
    #expect(server.counters.live == 0)
    #expect(server.counters.accepted == cases.count)
    // The port still serves.
    let peer = RawTLSPeer(port: port)
    runUntil(reactor) { peer.pump() }
    peer.sendRecordsInOneSegment([Array("still here".utf8)])
    runUntil(reactor) { server.built.last?.received == Array("still here".utf8) }
  }
}
