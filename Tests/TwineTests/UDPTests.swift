import Glibc
import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

@Suite("UDP ports")
struct UDPTests {
  @Test("a datagram sent to UDPEcho comes back whole, from the echo's address")
  func roundTrip() throws {
    let reactor = try Reactor()
    let server = try udpPort(reactor, UDPEcho())
    let client = DatagramRecorder()
    client.onDatagram = { _, _, _ in reactor.stop() }
    let clientPort = try udpPort(reactor, client)
    let message = pattern(1400, seed: 7)
    try clientPort.write(message, to: server.host)
    run(reactor)
    #expect(client.received.count == 1)
    #expect(client.received.first?.bytes == message)
    #expect(client.received.first?.from == server.host)
    #expect(server.host.host == "127.0.0.1" && server.host.port > 0)
  }

  @Test("a round trip over IPv6 loopback")
  func roundTripIPv6() throws {
    let reactor = try Reactor()
    let server = try udpPort(reactor, UDPEcho(), interface: "::1")
    let client = DatagramRecorder()
    client.onDatagram = { _, _, _ in reactor.stop() }
    let clientPort = try udpPort(reactor, client, interface: "::1")
    try clientPort.write("over IPv6", to: server.host)
    run(reactor)
    #expect(client.received.map { String(decoding: $0.bytes, as: UTF8.self) } == ["over IPv6"])
    #expect(client.received.first?.from == server.host)
    #expect(server.host.description == "[::1]:\(server.host.port)")
  }

  @Test("1,000 datagrams from 10 client ports are each answered to the port that sent them")
  func manyClients() throws {
    let reactor = try Reactor()
    let server = try udpPort(reactor, UDPEcho())
    let perClient = 100
    let window = 4  // datagrams in flight per client: far below any socket buffer, so none is dropped
    var finished = 0
    var clients: [(proto: DatagramRecorder, port: UDPPort)] = []
    for index in 0..<10 {
      let proto = DatagramRecorder()
      var sent = 0
      let port = try udpPort(reactor, proto)
      func sendNext(_ port: UDPPort) {
        try? port.write("client \(index) datagram \(sent)", to: server.host)
        sent += 1
      }
      proto.onDatagram = { proto, _, _ in
        if sent < perClient { sendNext(port) }
        if proto.received.count == perClient {
          finished += 1
          if finished == 10 { reactor.stop() }
        }
      }
      for _ in 0..<window { sendNext(port) }
      clients.append((proto, port))
    }
    run(reactor, timeout: 60)
    #expect(finished == 10)
    for (index, client) in clients.enumerated() {
      let texts = client.proto.received.map { String(decoding: $0.bytes, as: UTF8.self) }
      #expect(texts.count == perClient)
      #expect(Set(texts) == Set((0..<perClient).map { "client \(index) datagram \($0)" }), "client \(index)")
      #expect(client.proto.received.allSatisfy { $0.from == server.host })
    }
  }

  @Test("a datagram bigger than maxDatagramSize is reported with its real size, and the port keeps working")
  func truncation() throws {
    let reactor = try Reactor()
    let server = DatagramRecorder()
    var listeningAfterTruncation = false
    server.onDatagram = { proto, _, _ in
      if proto.received.count == 2 {
        listeningAfterTruncation = (proto.transport as? UDPPort)?.isListening == true
        reactor.stop()
      }
    }
    let serverPort = try udpPort(reactor, server, maxDatagramSize: 1000)
    let client = DatagramRecorder()
    let clientPort = try udpPort(reactor, client)
    try clientPort.write(pattern(2000), to: serverPort.host)
    try clientPort.write(pattern(1000, seed: 1), to: serverPort.host)  // exactly the limit: delivered
    try clientPort.write("small", to: serverPort.host)
    run(reactor)
    #expect(server.truncated.count == 1)
    #expect(server.truncated.first?.size == 2000)
    #expect(server.truncated.first?.from == clientPort.host)
    #expect(server.events == ["start", "truncated:2000", "datagram:1000", "datagram:5", "stop"])
    #expect(server.received.first?.bytes == pattern(1000, seed: 1))
    #expect(server.received.last?.bytes == Array("small".utf8))
    #expect(listeningAfterTruncation)
    #expect(serverPort.maxDatagramSize == 1000)
  }

  @Test("connected mode: write without an address reaches the peer; others' datagrams are dropped by the kernel")
  func connectedMode() throws {
    let reactor = try Reactor()
    let connected = DatagramRecorder()
    let connectedPort = try udpPort(reactor, connected)
    let peer = DatagramRecorder()
    peer.onDatagram = { _, _, _ in reactor.callLater(0.1) { reactor.stop() } }  // time for strays to arrive
    let peerPort = try udpPort(reactor, peer)
    let stranger = DatagramRecorder()
    let strangerPort = try udpPort(reactor, stranger)

    #expect(connectedPort.connectedAddress == nil)
    #expect(throws: SocketError.self) { try connectedPort.write("nowhere") }  // EDESTADDRREQ
    try connectedPort.connect(to: peerPort.host)
    #expect(connectedPort.connectedAddress == peerPort.host)

    try strangerPort.write("from the stranger", to: connectedPort.host)
    try peerPort.write("from the peer", to: connectedPort.host)
    try connectedPort.write("to the peer")
    let wrongPeer = #expect(throws: SocketError.self) { try connectedPort.write("x", to: strangerPort.host) }
    #expect(wrongPeer?.code == EISCONN)
    run(reactor)
    #expect(peer.received.map { String(decoding: $0.bytes, as: UTF8.self) } == ["to the peer"])
    #expect(peer.received.first?.from == connectedPort.host)
    #expect(connected.received.map { String(decoding: $0.bytes, as: UTF8.self) } == ["from the peer"])
    #expect(connected.received.allSatisfy { $0.from == peerPort.host })
  }

  @Test("connected to a port nobody listens on: connectionRefused is called and the port keeps working")
  func connectedRefusal() throws {
    let reactor = try Reactor()
    let echo = try udpPort(reactor, UDPEcho())
    let proto = DatagramRecorder()
    var listeningAfterRefusal = false
    proto.onRefused = { proto in
      // The same port, connected to a live echo now, still round-trips.
      listeningAfterRefusal = (proto.transport as? UDPPort)?.isListening == true
      do {
        try proto.transport.connect(to: echo.host)
        try proto.transport.write("still here")
      } catch {
        Issue.record("after the refusal: \(error)")
        reactor.stop()
      }
    }
    proto.onDatagram = { _, _, _ in reactor.stop() }
    let port = try udpPort(reactor, proto)
    try port.connect(to: SocketAddress(ipv4: (127, 0, 0, 1), port: freeUDPPort()))
    try port.write("anyone there?")
    run(reactor)
    #expect(proto.refusals == 1)
    #expect(listeningAfterRefusal)
    #expect(proto.events == ["start", "refused", "datagram:10", "stop"])
    #expect(proto.received.first?.from == echo.host)
  }

  @Test("joining and leaving a multicast group on loopback works or throws a SocketError that says why")
  func multicastMembership() throws {
    let reactor = try Reactor()
    let port = try udpPort(reactor, DatagramRecorder(), interface: "0.0.0.0")
    do {
      try port.joinGroup("239.255.77.77", interface: "127.0.0.1")
      try port.setLoopbackMode(false)
      try port.setLoopbackMode(true)
      try port.leaveGroup("239.255.77.77", interface: "127.0.0.1")
    } catch {
      #expect(error.code != 0 && !error.message.isEmpty)
    }
    // These fail the same way on every host.
    let notJoined = #expect(throws: SocketError.self) { try port.leaveGroup("239.255.77.78", interface: "127.0.0.1") }
    #expect(notJoined?.code == EADDRNOTAVAIL)
    let unicast = #expect(throws: SocketError.self) { try port.joinGroup("10.1.2.3", interface: "127.0.0.1") }
    #expect(unicast?.code == EINVAL)
    let notAnAddress = #expect(throws: SocketError.self) { try port.joinGroup("all-hosts") }
    #expect(notAnAddress?.message == "not a numeric multicast address: all-hosts")
    let wrongFamily = #expect(throws: SocketError.self) { try port.joinGroup("ff02::1:3") }
    #expect(wrongFamily?.code == EAFNOSUPPORT)
    let badInterface = #expect(throws: SocketError.self) { try port.joinGroup("239.255.77.77", interface: "lo") }
    #expect(badInterface?.message == "not a numeric IPv4 interface address: lo")
  }

  @Test("an IPv6 port joins a link-local group on the loopback interface by name, or says why not")
  func multicastIPv6() throws {
    let reactor = try Reactor()
    let port = try udpPort(reactor, DatagramRecorder(), interface: "::")
    do {
      try port.joinGroup("ff02::1:3", interface: "lo")
      try port.leaveGroup("ff02::1:3", interface: "lo")
    } catch {
      #expect(error.code != 0 && !error.message.isEmpty)
    }
    let noSuchInterface = #expect(throws: SocketError.self) {
      try port.joinGroup("ff02::1:3", interface: "no-such-if0")
    }
    #expect(noSuchInterface?.code == ENODEV)
  }

  @Test("writing to an address the kernel will not send to throws a SocketError with its errno")
  func badDestinations() throws {
    let reactor = try Reactor()
    let port = try udpPort(reactor, DatagramRecorder())
    let portZero = #expect(throws: SocketError.self) {
      try port.write("x", to: SocketAddress(ipv4: (127, 0, 0, 1), port: 0))
    }
    #expect(portZero?.code == EINVAL)
    let broadcast = #expect(throws: SocketError.self) {
      try port.write("x", to: SocketAddress(ipv4: (255, 255, 255, 255), port: 9))
    }
    #expect(broadcast?.code == EACCES)
    let unix = #expect(throws: SocketError.self) {
      try port.write("x", to: SocketAddress(.unix(path: "/tmp/x"), port: 0))
    }
    #expect(unix?.code == EAFNOSUPPORT)
    let ipv6 = #expect(throws: SocketError.self) {
      try port.write("x", to: SocketAddress(numericHost: "::1", port: 9)!)
    }
    #expect(ipv6 != nil && ipv6?.message.isEmpty == false)
    #expect(port.isListening)
  }

  @Test("listening on a UDP port already bound throws cannotListen with 'Address already in use'")
  func portInUse() throws {
    let reactor = try Reactor()
    let first = try udpPort(reactor, DatagramRecorder())
    let error = #expect(throws: TwineError.self) {
      try reactor.listenUDP(first.host.port, protocol: DatagramRecorder(), interface: "127.0.0.1")
    }
    guard case .cannotListen(let interface, let port, let cause)? = error else {
      Issue.record("expected cannotListen, got \(String(describing: error))")
      return
    }
    #expect(interface == "127.0.0.1" && port == first.host.port)
    #expect(cause.code == EADDRINUSE)
    #expect(error?.description == "cannot listen on 127.0.0.1:\(port): Address already in use")
    #expect(reactor.udpPorts.count == 1)
  }

  @Test("an interface that is not a numeric address throws badAddress")
  func badInterface() throws {
    let reactor = try Reactor()
    #expect(throws: TwineError.self) { try reactor.listenUDP(0, protocol: DatagramRecorder(), interface: "localhost") }
    #expect(reactor.udpPorts.isEmpty)
  }

  @Test("reactor shutdown closes every UDP port: stopProtocol once, writes throw EBADF, the port is free again")
  func shutdownClosesPorts() throws {
    let reactor = try Reactor()
    let proto = DatagramRecorder()
    let port = try udpPort(reactor, proto)
    let number = port.host.port
    reactor.callLater(0) { reactor.stop() }
    run(reactor)  // run() ends with shutdown()
    #expect(!port.isListening)
    #expect(proto.events == ["start", "stop"])
    #expect(reactor.udpPorts.isEmpty)
    let afterClose = #expect(throws: SocketError.self) { try port.write("late", to: port.host) }
    #expect(afterClose?.code == EBADF)
    #expect(port.host.port == number, "the address stays readable after close")
    let again = try Reactor()
    let rebound = try again.listenUDP(number, protocol: DatagramRecorder(), interface: "127.0.0.1")
    #expect(rebound.host.port == number)
  }

  @Test("stopListening inside datagramReceived: stopProtocol runs once and nothing arrives after it")
  func stopInsideCallback() throws {
    let reactor = try Reactor()
    let server = DatagramRecorder()
    server.onDatagram = { proto, _, _ in
      proto.transport.stopListening()
      proto.transport.stopListening()
      reactor.callLater(0.1) { reactor.stop() }
    }
    let serverPort = try udpPort(reactor, server)
    let clientPort = try udpPort(reactor, DatagramRecorder())
    for index in 0..<5 { try clientPort.write("datagram \(index)", to: serverPort.host) }
    run(reactor)
    #expect(server.events == ["start", "datagram:10", "stop"])
    #expect(!serverPort.isListening)
  }

  @Test("a protocol that closes its port in startProtocol leaves nothing registered")
  func stopInStart() throws {
    final class Quitter: DatagramProtocol {
      override func startProtocol() { transport.stopListening() }
    }
    let reactor = try Reactor()
    let port = try udpPort(reactor, Quitter())
    #expect(!port.isListening)
    #expect(reactor.udpPorts.isEmpty)
  }

  /// A recorder that answers every datagram to its sender, as an echo does.
  static func answering() -> DatagramRecorder {
    let proto = DatagramRecorder()
    proto.onDatagram = { proto, bytes, sender in try? proto.transport.write(bytes, to: sender) }
    return proto
  }

  /// Runs `reactor` for `seconds`.
  static func runFor(_ reactor: Reactor, _ seconds: Double) {
    reactor.callLater(seconds) { reactor.stop() }
    run(reactor)
  }

  @Test("loop guard: datagrams a port sends to itself never reach its protocol; they are counted, others are answered")
  func loopGuardDropsOwnDatagrams() throws {
    let reactor = try Reactor()
    let echo = Self.answering()
    let port = try udpPort(reactor, echo)
    let client = DatagramRecorder()
    let clientPort = try udpPort(reactor, client)
    for index in 0..<3 { try port.write("to myself \(index)", to: port.host) }  // source = the port's own address
    try clientPort.write("a real client", to: port.host)
    Self.runFor(reactor, 0.3)
    #expect(port.droppedLoops == 3)
    #expect(echo.received.map { String(decoding: $0.bytes, as: UTF8.self) } == ["a real client"])
    #expect(client.received.map { String(decoding: $0.bytes, as: UTF8.self) } == ["a real client"])
  }

  @Test("loop guard off: the same datagram to itself makes an answering port answer itself again and again")
  func withoutLoopGuardTheEchoLoops() throws {
    let reactor = try Reactor()
    let echo = Self.answering()
    let port = try udpPort(reactor, echo)
    port.guardsAgainstLoops = false
    try port.write("to myself", to: port.host)
    Self.runFor(reactor, 0.3)
    #expect(port.droppedLoops == 0)
    #expect(echo.received.count > 100, "the reproduction is real: one datagram keeps the echo busy")
  }

  @Test(
    "loop guard: from another loopback address, ::1, or an interface address, with the port's number",
    arguments: ["127.0.0.1", "0.0.0.0", "::1", "::"])
  func loopGuardOtherLocalSources(interface: String) throws {
    let reactor = try Reactor()
    let echo = Self.answering()
    let port = try udpPort(reactor, echo, interface: interface)
    let number = port.host.port
    var destinations: [SocketAddress] = []
    switch interface {
    case "127.0.0.1":
      destinations = [port.host]
    case "0.0.0.0":
      // Sent to 127.0.0.2, the datagram leaves from 127.0.0.2 with the port's number;
      // sent to an interface's own address, it leaves from that address.
      destinations = [SocketAddress(ipv4: (127, 0, 0, 2), port: number)]
      for case .ipv4(let value) in UDPLoopGuard.interfaceAddresses() where value >> 24 != 127 {
        destinations.append(SocketAddress(.ipv4(value), port: number))
      }
    default:
      destinations = [SocketAddress(numericHost: "::1", port: number)!]
    }
    for destination in destinations { try port.write("to myself", to: destination) }
    Self.runFor(reactor, 0.3)
    #expect(port.droppedLoops == destinations.count, "sent to \(destinations)")
    #expect(echo.received.isEmpty, "from \(echo.received.map(\.from))")
  }

  @Test(
    "loop guard: from another socket on 127.0.0.2 with the port's number is dropped too; another number is answered")
  func loopGuardSameNumberOtherSocket() throws {
    let reactor = try Reactor()
    let echo = Self.answering()
    let port = try udpPort(reactor, echo, interface: "127.0.0.1")
    // 127.0.0.2 with the same number is another socket, but the rule is by address: this host, this number.
    let sameNumber = DatagramRecorder()
    let sameNumberPort = try reactor.listenUDP(port.host.port, protocol: sameNumber, interface: "127.0.0.2")
    let other = DatagramRecorder()
    let otherPort = try udpPort(reactor, other)
    try sameNumberPort.write("same number", to: port.host)
    try otherPort.write("other number", to: port.host)
    Self.runFor(reactor, 0.3)
    #expect(port.droppedLoops == 1)
    #expect(echo.received.map { String(decoding: $0.bytes, as: UTF8.self) } == ["other number"])
    #expect(sameNumber.received.isEmpty)
    #expect(other.received.count == 1)
  }
}
