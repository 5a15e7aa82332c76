import CLibevent
import Foundation
import Testing
import Twine
import TwineProtocols

#if canImport(Glibc)
  import Glibc
#endif

/// Runs `reactor` until something calls `stop()`, or fails the test after `timeout` seconds.
func run(_ reactor: Reactor, timeout: Double = 60, sourceLocation: SourceLocation = #_sourceLocation) {
  var timedOut = false
  let guardCall = reactor.callLater(timeout) {
    timedOut = true
    reactor.stop()
  }
  reactor.run()
  guardCall.cancel()
  #expect(!timedOut, "reactor timed out after \(timeout) s", sourceLocation: sourceLocation)
}

/// This process's resident set size, in bytes, from /proc/self/status.
func residentBytes() -> Int {
  guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
    let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
    let kB = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
  else { return 0 }
  return kB * 1024
}

/// A client that sends `message` on connect, collects what comes back, and reports how it ended.
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
    received += data.bytes
    if received.count >= expecting { transport.loseConnection() }
  }

  override func connectionLost(_ reason: CloseReason) {
    lostReason = reason
    done(self)
  }
}

/// Builds one configured ``Client``.
final class OneClient: ClientFactory {
  let client = Client()
  init(_ configure: (Client) -> Void) {
    configure(client)
    super.init(Client.self)
  }
  override func buildProtocol(_ peer: SocketAddress) -> Protocol? { client }
}

/// A blocking socket client on its own thread: sends `count` bytes of `filler` after
/// `prefix`, then `suffix`, from one fixed buffer (no allocation per send), stopping at the
/// first error; then reads until `replyLength` bytes came or the peer closed.
final class SocketFlood: @unchecked Sendable {
  private let lock = NSLock()
  private var finished = false
  private var sentBytes = 0
  private var replyBytes: [UInt8] = []

  var isFinished: Bool { lock.withLock { finished } }
  var sent: Int { lock.withLock { sentBytes } }
  var reply: [UInt8] { lock.withLock { replyBytes } }

  init(port: Int, prefix: [UInt8] = [], filler: UInt8, count: Int, suffix: [UInt8] = [], replyLength: Int = 0) {
    let thread = Thread { [self] in
      let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
      defer {
        close(fd)
        lock.withLock { finished = true }
      }
      var timeout = timeval(tv_sec: 60, tv_usec: 0)
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
      var address = sockaddr_in()
      address.sin_family = sa_family_t(AF_INET)
      address.sin_port = in_port_t(UInt16(port).bigEndian)
      address.sin_addr.s_addr = in_addr_t(UInt32(0x7f00_0001).bigEndian)
      let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
      }
      guard connected, sendAll(fd, prefix) else { return }
      let chunk = [UInt8](repeating: filler, count: 64 << 10)
      var left = count
      while left > 0 {
        let size = min(left, chunk.count)
        let sent = chunk.withUnsafeBytes { send(fd, $0.baseAddress, size, Int32(MSG_NOSIGNAL)) }
        guard sent > 0 else { return }
        left -= sent
        lock.withLock { sentBytes += sent }
      }
      guard sendAll(fd, suffix) else { return }
      var buffer = [UInt8](repeating: 0, count: 4096)
      while lock.withLock({ replyBytes.count }) < replyLength {
        let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard got > 0 else { return }
        lock.withLock { replyBytes += buffer[..<got] }
      }
    }
    thread.start()
  }

  private func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
      let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
      guard sent > 0 else { return false }
      offset += sent
      lock.withLock { sentBytes += sent }
    }
    return true
  }
}
