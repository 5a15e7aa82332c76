import CLibevent
import Foundation
import Glibc
import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

/// Collects the whole request, answers once the peer has shut its side, then closes ours.
final class Collector: Protocol, HalfCloseable {
  private(set) var lost: CloseReason?
  private var request: [UInt8] = []
  override func dataReceived(_ data: RawSpan) { data.withUnsafeBytes { request.append(contentsOf: $0) } }
  func readConnectionLost() {
    transport.write(request.reversed())
    transport.loseWriteConnection()
  }
  override func connectionLost(_ reason: CloseReason) { lost = reason }
}

/// Connects, sends `request`, shuts the write side, reads to end of stream; returns the reply.
func askHalfClosed(port: Int, _ request: [UInt8]) -> [UInt8] {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  defer { Glibc.close(fd) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_port = in_port_t(UInt16(port).bigEndian)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  _ = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
  }
  var offset = 0
  while offset < request.count {
    let n = request[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    guard n > 0 else { break }
    offset += n
  }
  shutdown(fd, Int32(SHUT_WR))
  var reply: [UInt8] = []
  var buffer = [UInt8](repeating: 0, count: 65536)
  while true {
    let n = recv(fd, &buffer, buffer.count, 0)
    if n <= 0 { break }
    reply += buffer[..<n]
  }
  return reply
}

@Suite("Half-close")
struct HalfCloseTests {
  final class Reply: @unchecked Sendable { var bytes: [UInt8] = [] }

  /// Serves `factory`; a blocking client on another thread sends `request` half-closed; returns its reply.
  func exchange(_ factory: Factory, _ request: [UInt8]) throws -> [UInt8] {
    let reactor = try Reactor()
    let port = try listen(reactor, factory)
    let reply = Reply()
    let door = reactor.crossThread
    nonisolated(unsafe) let unsafeReactor = reactor
    let client = Thread {
      reply.bytes = askHalfClosed(port: port, request)
      door.callFromThread { unsafeReactor.stop() }
    }
    client.start()
    run(reactor, timeout: 60)
    return reply.bytes
  }

  @Test("a client that sends a request then shuts its write side still receives the whole reply")
  func halfClosedPeerGetsReply() throws {
    var collector: Collector?
    let factory = Factory { _ in
      let made = Collector()
      collector = made
      return made
    }
    let request = pattern(3 << 20, seed: 8)
    let reply = try exchange(factory, request)
    #expect(reply.count == request.count)
    #expect(reply == request.reversed())
    #expect(try #require(collector).lost == .closedByUs)
  }

  @Test("without the opt-in, the peer's end of stream ends the connection after the echo is flushed")
  func withoutOptInPeerCloseEnds() throws {
    final class Plain: Protocol {
      private(set) var lost: CloseReason?
      override func dataReceived(_ data: RawSpan) { transport.write(data) }
      override func connectionLost(_ reason: CloseReason) { lost = reason }
    }
    var plain: Plain?
    let factory = Factory { _ in
      let made = Plain()
      plain = made
      return made
    }
    let reply = try exchange(factory, Array("ping".utf8))
    #expect(reply == Array("ping".utf8))
    #expect(try #require(plain).lost == .closedByPeer)
  }
}
