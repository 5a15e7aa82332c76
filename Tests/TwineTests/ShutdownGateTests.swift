import CLibevent
import Glibc
import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

/// True for ``TwineError/reactorShutDown``.
private func isShutDownError(_ error: any Error) -> Bool {
  if case TwineError.reactorShutDown = error { return true }
  return false
}

/// The process's open descriptors (the entries of /proc/self/fd).
private func openDescriptors() -> Set<String> {
  guard let dir = opendir("/proc/self/fd") else { return [] }
  defer { closedir(dir) }
  var names: Set<String> = []
  while let entry = readdir(dir) {
    let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    if name != "." && name != ".." { names.insert(name) }
  }
  names.remove(String(dirfd(dir)))
  return names
}

/// True when `body` leaves the set of open descriptors as it found it. Other suites run in
/// parallel and open sockets too: many tries, any one quiet enough passes (a real leak
/// adds a descriptor on every try).
private func opensNothing(_ body: () -> Void) -> Bool {
  for _ in 0..<100 {
    let before = openDescriptors()
    body()
    if openDescriptors() == before { return true }
    usleep(2000)
  }
  return false
}

/// Binds a fresh socket of `type` to 127.0.0.1:`port`; true when the port was free.
private func canBind(_ type: Syscall.SocketType, port: Int) -> Bool {
  guard let fd = try? Syscall.socket(AF_INET, type) else { return false }
  defer { try? Syscall.close(fd) }
  guard let address = NumericAddress(host: "127.0.0.1", port: port) else { return false }
  return (try? Syscall.bind(fd, address)) != nil
}

/// A TCP port nothing listens on right now.
private func freeTCPPort() throws -> Int {
  let fd = try Syscall.socket(AF_INET, .stream)
  defer { try? Syscall.close(fd) }
  try Syscall.bind(fd, NumericAddress(host: "127.0.0.1", port: 0)!)
  return try Syscall.localAddress(fd).port
}

/// A reactor that has shut down.
private func shutDownReactor() throws -> Reactor {
  let reactor = try Reactor()
  reactor.shutdown()
  return reactor
}

/// Every creator passes ``Reactor/admit(_:)``: after `shutdown()` each one refuses and
/// binds, opens and schedules nothing.
@Suite("Shutdown gate", .serialized)
struct ShutdownGateTests {
  @Test("listenTCP after shutdown throws .reactorShutDown and binds nothing")
  func listenTCP() throws {
    let reactor = try shutDownReactor()
    let port = try freeTCPPort()
    let factory = Factory(Echo.self)
    #expect(
      opensNothing {
        #expect { try reactor.listenTCP(port, factory: factory, interface: "127.0.0.1") } throws: {
          isShutDownError($0)
        }
      })
    #expect(reactor.ports.isEmpty)
    #expect(canBind(.stream, port: port), "the port stayed free")
  }

  @Test("listenUNIX after shutdown throws .reactorShutDown and makes no socket file")
  func listenUNIX() throws {
    let reactor = try shutDownReactor()
    let folder = try SocketFolder()
    let path = folder.file("gate.sock")
    #expect(
      opensNothing {
        #expect { try reactor.listenUNIX(path, factory: Factory(Echo.self)) } throws: { isShutDownError($0) }
      })
    #expect(fileStatus(path) == nil)
    #expect(reactor.ports.isEmpty)
  }

  @Test("listenUDP after shutdown throws .reactorShutDown: nothing bound, the protocol never started")
  func listenUDP() throws {
    let reactor = try shutDownReactor()
    let port = freeUDPPort()
    let recorder = DatagramRecorder()
    #expect(
      opensNothing {
        #expect {
          try reactor.listenUDP(port, protocol: recorder, interface: "127.0.0.1")
        } throws: { isShutDownError($0) }
      })
    #expect(reactor.udpPorts.isEmpty)
    #expect(recorder.started == 0)
    #expect(canBind(.datagram, port: port), "the port stayed free")
  }

  @Test("listenSSL after shutdown throws .reactorShutDown before reading any file")
  func listenSSL() throws {
    let reactor = try shutDownReactor()
    let port = try freeTCPPort()
    let tls = TLSOptions.server(certificateFile: "/nonexistent/cert.pem", privateKeyFile: "/nonexistent/key.pem")
    #expect(
      opensNothing {
        #expect {
          try reactor.listenSSL(port, factory: Factory(Echo.self), tls: tls, interface: "127.0.0.1")
        } throws: { isShutDownError($0) }
      })
    #expect(reactor.ports.isEmpty && reactor.tlsContexts.isEmpty)
    #expect(canBind(.stream, port: port))
  }

  @Test("connectTCP after shutdown fails with .reactorShutdown at once and opens no socket")
  func connectTCP() throws {
    let reactor = try shutDownReactor()
    let clients = ClientMaker()
    #expect(opensNothing { reactor.connectTCP("127.0.0.1", 9, factory: clients) })
    #expect(!clients.failed.isEmpty && clients.failed.allSatisfy { $0 == .reactorShutdown })
    #expect(reactor.connections.isEmpty && reactor.delayedCalls.isEmpty)
    // A name needs the resolver: refused too, and no DNS base is made.
    let named = ClientMaker()
    reactor.connectTCP("example.invalid", 9, factory: named)
    #expect(named.failed == [.reactorShutdown])
    #expect(reactor.resolver == nil)
  }

  @Test("connectUNIX after shutdown fails with .reactorShutdown at once and opens no socket")
  func connectUNIX() throws {
    let reactor = try shutDownReactor()
    let clients = ClientMaker()
    #expect(opensNothing { reactor.connectUNIX("/tmp/twine-gate-nothing.sock", factory: clients) })
    #expect(!clients.failed.isEmpty && clients.failed.allSatisfy { $0 == .reactorShutdown })
    #expect(reactor.connections.isEmpty)
  }

  @Test("connectSSL after shutdown throws .reactorShutDown; the factory hears nothing")
  func connectSSL() throws {
    let reactor = try shutDownReactor()
    let clients = ClientMaker()
    #expect(
      opensNothing {
        #expect {
          try reactor.connectSSL("127.0.0.1", 9, factory: clients, tls: .client(trustedCAFile: "/nonexistent.pem"))
        } throws: { isShutDownError($0) }
      })
    #expect(clients.failed.isEmpty && reactor.tlsContexts.isEmpty)
  }

  @Test("a connector made before shutdown fails its next attempt with .reactorShutdown")
  func retryAfterShutdown() throws {
    let reactor = try Reactor()
    let clients = ClientMaker()
    let connector = reactor.connectTCP("127.0.0.1", try freeTCPPort(), factory: clients)
    connector.stopConnecting()
    reactor.shutdown()
    #expect(opensNothing { connector.connect() })
    #expect(clients.failed.allSatisfy { $0 == .reactorShutdown } && !clients.failed.isEmpty)
  }

  @Test("callLater after shutdown returns an inactive call that never runs")
  func callLater() throws {
    let reactor = try shutDownReactor()
    var ran = false
    let call = reactor.callLater(0) { ran = true }
    #expect(!call.isActive)
    call.reset(1)
    call.delay(1)
    call.cancel()
    #expect(!call.isActive && reactor.delayedCalls.isEmpty)
    reactor.iterate(blocking: false)
    #expect(!ran)
  }

  @Test("adoptStreamSocket after shutdown throws .reactorShutDown; the socket stays the caller's, untouched")
  func adoptStreamSocket() throws {
    let reactor = try shutDownReactor()
    var pair: [Int32] = [-1, -1]
    #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
    defer { for fd in pair { close(fd) } }
    #expect { try reactor.adoptStreamSocket(pair[0], factory: Factory(Echo.self)) } throws: { isShutDownError($0) }
    #expect(fcntl(pair[0], F_GETFL) & O_NONBLOCK == 0, "still blocking: nothing was done to it")
    #expect(write(pair[0], "x", 1) == 1)
    var byte: UInt8 = 0
    #expect(read(pair[1], &byte, 1) == 1 && byte == UInt8(ascii: "x"))
    #expect(reactor.connections.isEmpty)
  }

  @Test("adoptBufferevent after shutdown throws .reactorShutDown; the bufferevent is still the caller's")
  func adoptBufferevent() throws {
    let base = try #require(event_base_new())
    defer { event_base_free(base) }
    var pair: [Int32] = [-1, -1]
    #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
    defer { close(pair[1]) }
    do {
      let reactor = try Reactor(borrowing: base)
      reactor.shutdown()
      let bev = try #require(bufferevent_socket_new(base, pair[0], Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)))
      #expect { try reactor.adoptBufferevent(bev, factory: Factory(Echo.self)) } throws: { isShutDownError($0) }
      #expect(reactor.connections.isEmpty)
      bufferevent_free(bev)  // still ours: this must be the only free (ASan checks)
    }
  }

  @Test("useNameserver, installSignalHandlers and rate-limit groups are refused after shutdown")
  func otherCreators() throws {
    let reactor = try shutDownReactor()
    #expect { try reactor.useNameserver("127.0.0.1:53") } throws: { isShutDownError($0) }
    #expect(reactor.resolver == nil)
    #expect { try reactor.sharedResolver() } throws: { isShutDownError($0) }
    #expect { try reactor.installSignalHandlers() } throws: { isShutDownError($0) }
    #expect(reactor.rateLimitGroup(for: RateLimitGroup(RateLimit(readBytesPerSecond: 1000))) == nil)
    #expect { try reactor.tlsContext(for: .client()) } throws: { isShutDownError($0) }
  }

  /// Objects made before shutdown, used after the reactor itself is freed. Run under ASan.
  private struct Leftovers {
    let port: ListeningPort
    let unixPort: ListeningPort
    let udp: UDPPort
    let connector: TCPConnector
    let lookingUp: TCPConnector
    let call: any ScheduledCall
    let clients: ClientMaker
    let folder: SocketFolder

    init(_ reactor: Reactor) throws {
      folder = try SocketFolder()
      port = try reactor.listenTCP(0, factory: Factory(Echo.self), interface: "127.0.0.1")
      unixPort = try reactor.listenUNIX(folder.file("left.sock"), factory: Factory(Echo.self))
      udp = try udpPort(reactor, DatagramRecorder())
      clients = ClientMaker()
      connector = reactor.connectTCP("127.0.0.1", port.address.port, factory: clients)
      lookingUp = reactor.connectTCP("example.invalid", 9, factory: clients)  // a DNS lookup in flight
      call = reactor.callLater(60) {}
    }

    /// Every stop, cancel and query, on objects whose reactor is gone.
    func useAfterReactorIsGone() {
      #expect(!port.isListening && !unixPort.isListening && !udp.isListening)
      port.stopListening()
      unixPort.stopListening()
      udp.stopListening()
      _ = udp.host
      #expect(throws: SocketError.self) { try udp.write(Array("x".utf8), to: port.address) }
      #expect(throws: SocketError.self) { try udp.setLoopbackMode(true) }
      #expect(!call.isActive)
      call.cancel()
      call.reset(1)
      call.delay(1)
      #expect(connector.scheduler == nil)
      connector.stopConnecting()
      connector.disconnect()
      lookingUp.stopConnecting()
      let failuresBefore = clients.failed.count
      connector.connect()  // the reactor is gone: refused like after shutdown
      #expect(clients.failed.count == failuresBefore + 1 && clients.failed.last == .reactorShutdown)
    }
  }

  @Test("ports, UDP ports, connectors and timers stay inert after shutdown() and the reactor's free")
  func objectsOutliveShutDownReactor() throws {
    var leftovers: Leftovers?
    do {
      let reactor = try Reactor()
      leftovers = try Leftovers(reactor)
      reactor.shutdown()
    }  // the reactor is freed here
    try #require(leftovers).useAfterReactorIsGone()
  }

  @Test("the same when the reactor is freed without shutdown() (its deinit shuts down)")
  func objectsOutliveFreedReactor() throws {
    var leftovers: Leftovers?
    do {
      let reactor = try Reactor()
      leftovers = try Leftovers(reactor)
    }  // freed without shutdown(): deinit runs it
    try #require(leftovers).useAfterReactorIsGone()
  }
}
