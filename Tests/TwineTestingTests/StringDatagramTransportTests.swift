import Testing
import TwineTesting

#if canImport(Glibc)
  import Glibc
#endif

/// Records every datagram event in order.
final class DatagramLog: DatagramProtocol {
  var events: [String] = []
  var replyTo: SocketAddress?

  override func startProtocol() { events.append("start") }
  override func stopProtocol() { events.append("stop") }
  override func datagramReceived(_ data: RawSpan, from sender: SocketAddress) {
    events.append("datagram:\(data.utf8String) from \(sender)")
    if let replyTo { try? transport.write(data, to: replyTo) }
  }
  override func datagramTruncated(from sender: SocketAddress, size: Int) {
    events.append("truncated:\(size) from \(sender)")
  }
  override func connectionRefused() { events.append("refused") }
}

@Suite("StringDatagramTransport behaves like a UDP port")
struct StringDatagramTransportTests {
  let alice = SocketAddress(ipv4: (10, 0, 0, 1), port: 5000)
  let bob = SocketAddress(ipv4: (10, 0, 0, 2), port: 6000)

  @Test("startProtocol, datagrams with their senders, then stopProtocol once and nothing after")
  func eventOrder() {
    let transport = StringDatagramTransport()
    let proto = DatagramLog()
    transport.start(proto)
    transport.receive("hi", from: alice)
    transport.stopListening()
    transport.stopListening()
    transport.receive("late", from: alice)
    #expect(proto.events == ["start", "datagram:hi from 10.0.0.1:5000", "stop"])
    #expect(!transport.isListening)
  }

  @Test("a datagram bigger than maxDatagramSize is reported as truncated with its size, not delivered")
  func truncation() {
    let transport = StringDatagramTransport(maxDatagramSize: 4)
    let proto = DatagramLog()
    transport.start(proto)
    defer { transport.stopListening() }
    transport.receive("12345", from: bob)
    transport.receive("1234", from: bob)
    #expect(proto.events == ["start", "truncated:5 from 10.0.0.2:6000", "datagram:1234 from 10.0.0.2:6000"])
  }

  @Test("writes are recorded with their destination; after stopListening they throw EBADF")
  func writes() throws {
    let transport = StringDatagramTransport()
    let proto = DatagramLog()
    proto.replyTo = bob
    transport.start(proto)
    transport.receive("ping", from: alice)
    try transport.write([1, 2, 3], to: alice)
    #expect(transport.written.map(\.string) == ["ping", "\u{1}\u{2}\u{3}"])
    #expect(transport.written.map(\.address) == [bob, alice])
    transport.stopListening()
    let error = #expect(throws: SocketError.self) { try transport.write("late", to: alice) }
    #expect(error?.code == EBADF)
  }

  @Test("connected mode: only the peer's datagrams arrive, write() goes to it, others throw EISCONN")
  func connectedMode() throws {
    let transport = StringDatagramTransport()
    let proto = DatagramLog()
    transport.start(proto)
    defer { transport.stopListening() }
    let unconnected = #expect(throws: SocketError.self) { try transport.write("x") }
    #expect(unconnected?.code == EDESTADDRREQ)
    transport.peerRefused()  // not connected: nothing to refuse
    try transport.connect(to: alice)
    transport.receive("from bob", from: bob)
    transport.receive("from alice", from: alice)
    try transport.write("to alice")
    let wrong = #expect(throws: SocketError.self) { try transport.write("x", to: bob) }
    #expect(wrong?.code == EISCONN)
    transport.peerRefused()
    #expect(proto.events == ["start", "datagram:from alice from 10.0.0.1:5000", "refused"])
    #expect(transport.written == [.init(bytes: Array("to alice".utf8), address: alice)])
  }

  @Test("groups are recorded; joining twice or leaving a group not joined throws as the kernel does")
  func groups() throws {
    let transport = StringDatagramTransport()
    transport.start(DatagramLog())
    defer { transport.stopListening() }
    try transport.joinGroup("239.1.2.3")
    try transport.joinGroup("239.1.2.3", interface: "127.0.0.1")
    #expect(transport.groups == ["239.1.2.3", "239.1.2.3%127.0.0.1"])
    #expect((#expect(throws: SocketError.self) { try transport.joinGroup("239.1.2.3") })?.code == EADDRINUSE)
    try transport.leaveGroup("239.1.2.3")
    #expect((#expect(throws: SocketError.self) { try transport.leaveGroup("239.1.2.3") })?.code == EADDRNOTAVAIL)
    try transport.setLoopbackMode(false)
    #expect(!transport.loopbackMode)
  }
}
