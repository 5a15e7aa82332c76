import CLibevent
import Glibc
import LoopbackTestSupport
import Testing

@testable import Twine

/// Records every datagram event; `onDatagram` may answer, count or stop the reactor.
final class DatagramRecorder: DatagramProtocol {
  var received: [(bytes: [UInt8], from: SocketAddress)] = []
  var truncated: [(from: SocketAddress, size: Int)] = []
  var refusals = 0
  var started = 0
  var stopped = 0
  var events: [String] = []
  var onDatagram: (DatagramRecorder, [UInt8], SocketAddress) -> Void = { _, _, _ in }
  var onTruncated: (DatagramRecorder) -> Void = { _ in }
  var onRefused: (DatagramRecorder) -> Void = { _ in }

  override func startProtocol() {
    started += 1
    events.append("start")
  }

  override func stopProtocol() {
    stopped += 1
    events.append("stop")
  }

  override func datagramReceived(_ data: RawSpan, from sender: SocketAddress) {
    let bytes = data.bytes
    received.append((bytes, sender))
    events.append("datagram:\(bytes.count)")
    onDatagram(self, bytes, sender)
  }

  override func datagramTruncated(from sender: SocketAddress, size: Int) {
    truncated.append((sender, size))
    events.append("truncated:\(size)")
    onTruncated(self)
  }

  override func connectionRefused() {
    refusals += 1
    events.append("refused")
    onRefused(self)
  }
}

/// A loopback UDP port on an ephemeral port.
func udpPort(
  _ reactor: Reactor, _ proto: DatagramProtocol, interface: String = "127.0.0.1", maxDatagramSize: Int = 65507
) throws -> UDPPort {
  try reactor.listenUDP(0, protocol: proto, interface: interface, maxDatagramSize: maxDatagramSize)
}

/// A UDP port number that nothing listens on right now (bound, read, then closed again).
func freeUDPPort() -> Int {
  let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
  defer { close(fd) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  var length = socklen_t(MemoryLayout<sockaddr_in>.size)
  _ = withUnsafeMutablePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
      bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
    }
  }
  return Int(UInt16(bigEndian: address.sin_port))
}
