import CLibevent
import Glibc
import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

/// The resident set size of this process, in bytes.
func residentBytes() -> Int {
  let fd = open("/proc/self/statm", O_RDONLY)
  guard fd >= 0 else { return 0 }
  defer { close(fd) }
  var buffer = [UInt8](repeating: 0, count: 128)
  let got = read(fd, &buffer, buffer.count)
  guard got > 0 else { return 0 }
  let fields = String(decoding: buffer[..<got], as: UTF8.self).split(separator: " ")
  guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
  return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// True when this process runs with AddressSanitizer's runtime.
let runningUnderAddressSanitizer = dlsym(nil, "__asan_init") != nil

/// A client socket that connects and never reads; the test closes it.
func silentPeer(port: Int) -> Int32 {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  var small: Int32 = 4096
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_port = in_port_t(UInt16(port).bigEndian)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  _ = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
  }
  return fd
}

/// Writes `total` bytes in 64 KiB chunks as fast as flow control lets it (a push producer).
final class Firehose: Protocol, PushProducer {
  var total = 1 << 30
  weak var reactor: Reactor?
  private(set) var pauses = 0
  private(set) var written = 0
  private(set) var lost: CloseReason?
  private var paused = false
  private let chunk = [UInt8](repeating: 0x5a, count: 64 << 10)

  override func connectionMade() {
    transport.registerProducer(self)
    produce()
  }

  private func produce() {
    while !paused && connected && written < total {
      transport.write(chunk)
      written += chunk.count
    }
  }

  func pauseProducing() {
    paused = true
    pauses += 1
  }

  func resumeProducing() {
    paused = false
    reactor?.callLater(0) { [weak self] in self?.produce() }
  }

  func stopProducing() { paused = true }

  override func connectionLost(_ reason: CloseReason) { lost = reason }
}

/// Ignores flow control: writes everything at once.
final class Ignorer: Protocol {
  private(set) var lost: CloseReason?
  override func connectionMade() {
    let chunk = [UInt8](repeating: 1, count: 1 << 20)
    for _ in 0..<200 where connected { transport.write(chunk) }
  }
  override func connectionLost(_ reason: CloseReason) { lost = reason }
}

// Serialized: the first test measures the whole process's RSS, which the hard-limit test would inflate.
@Suite("Flow control against peers that do not read", .serialized)
struct FlowControlTests {
  @Test("a producer writing 1 GiB to a peer that never reads is paused; memory stays bounded")
  func producerPausedForSilentPeer() throws {
    let reactor = try Reactor()
    var firehose: Firehose?
    let server = Factory { [unowned reactor] _ in
      let hose = Firehose()
      hose.reactor = reactor
      firehose = hose
      return hose
    }
    let port = try listen(reactor, server)
    let before = residentBytes()
    let peer = silentPeer(port: port)
    var peak = 0
    let sampler = LoopingCall(reactor) { peak = max(peak, residentBytes()) }
    sampler.start(interval: 0.05)
    reactor.callLater(2) { reactor.stop() }
    reactor.run()
    sampler.stop()
    Glibc.close(peer)
    // The peer never read: only what fits in the socket buffers and one high-water mark may be out.
    let hose = try #require(firehose)
    #expect(hose.pauses >= 1)
    #expect(hose.written < 64 << 20)
    // AddressSanitizer holds freed memory in quarantine (256 MiB): RSS says nothing there.
    if !runningUnderAddressSanitizer {
      #expect(peak - before < 64 << 20, "RSS grew by \(peak - before) bytes")
    }
    #expect(hose.lost == .reactorShutdown)
  }

  @Test("an echo whose peer sends but never reads stops reading at the high-water mark")
  func echoStopsReadingForSilentPeer() throws {
    let reactor = try Reactor()
    let server = Factory(Echo.self)
    let port = try listen(reactor, server)
    let peer = silentPeer(port: port)
    var flags = fcntl(peer, F_GETFL)
    flags |= O_NONBLOCK
    _ = fcntl(peer, F_SETFL, flags)
    let chunk = [UInt8](repeating: 7, count: 64 << 10)
    var sent = 0
    let writer = LoopingCall(reactor) {
      while true {
        let n = chunk.withUnsafeBytes { send(peer, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { break }
        sent += n
      }
    }
    writer.start(interval: 0.01)
    reactor.callLater(1.5) { reactor.stop() }
    reactor.run()
    writer.stop()
    Glibc.close(peer)
    // Both directions' kernel buffers fill, then the server stops reading: the client's sends stall.
    #expect(sent < 32 << 20, "client sent \(sent) bytes")
    #expect(server.counters.bytesIn - server.counters.bytesOut <= WriteBufferLimits.default.highWater + (128 << 10))
  }

  @Test("a writer that ignores flow control is aborted with .bufferOverflow at the hard limit")
  func hardLimitAborts() throws {
    let reactor = try Reactor()
    var ignorer: Ignorer?
    let server = Factory { _ in
      let made = Ignorer()
      ignorer = made
      return made
    }
    let port = try listen(reactor, server)
    let peer = silentPeer(port: port)
    reactor.callLater(1) { reactor.stop() }
    reactor.run()
    Glibc.close(peer)
    #expect(try #require(ignorer).lost == .bufferOverflow)
    #expect(server.counters.live == 0)
    #expect(server.counters.abortedForOverflow == 1)
  }
}
