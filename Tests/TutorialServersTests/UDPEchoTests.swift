import Testing
import TutorialServers
import TwineTesting

@Suite("UDPEcho on the in-memory datagram transport")
struct UDPEchoTests {
  @Test("sends each datagram back to its own sender, whole and in order")
  func echoesToSender() {
    let transport = StringDatagramTransport()
    transport.start(UDPEcho())
    defer { transport.stopListening() }
    let alice = SocketAddress(ipv4: (127, 0, 0, 1), port: 40000)
    let bob = SocketAddress(numericIPv6Loopback: 40001)
    transport.receive("from alice", from: alice)
    transport.receive([0, 255, 10], from: bob)
    transport.receive("again alice", from: alice)
    #expect(
      transport.written == [
        .init(bytes: Array("from alice".utf8), address: alice),
        .init(bytes: [0, 255, 10], address: bob),
        .init(bytes: Array("again alice".utf8), address: alice),
      ])
  }

  @Test("a datagram too big for the port is counted, never echoed cut short")
  func truncatedIsNotEchoed() {
    let transport = StringDatagramTransport(maxDatagramSize: 8)
    let echo = UDPEcho()
    transport.start(echo)
    defer { transport.stopListening() }
    transport.receive("123456789", from: SocketAddress(ipv4: (127, 0, 0, 1), port: 40000))
    #expect(transport.written.isEmpty)
    #expect(echo.truncated == 1)
  }
}

extension SocketAddress {
  /// `[::1]:port`.
  fileprivate init(numericIPv6Loopback port: Int) { self.init(.ipv6(high: 0, low: 1, scopeID: 0), port: port) }
}
