import Glibc
import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

/// `adoptListeningSocket`: accepting on a listening socket a supervisor or a host made.
@Suite("Adopting listening sockets")
struct AdoptListeningTests {
  /// Echoes `message` through `factory`'s clients connecting with `connect`, then stops.
  private func echoOnce(_ reactor: Reactor, connect: (ClientMaker) throws -> Void) throws -> Client? {
    let clients = ClientMaker()
    let message = pattern(300_000, seed: 5)
    clients.configure = { client in
      client.message = message
      client.expecting = message.count
      client.done = { _ in reactor.stop() }
    }
    clients.onFailure = { _ in reactor.stop() }
    try connect(clients)
    run(reactor)
    #expect(clients.failed.isEmpty)
    #expect(clients.clients.first?.received == message)
    return clients.clients.first
  }

  @Test("an adopted listening TCP socket (blocking, made by the host) accepts and serves echo; stopping closes it")
  func adoptedTCP() throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    let bound = try #require(RawSockets.bindLoopback(fd))
    #expect(listen(fd, 16) == 0)
    let identity = try #require(RawSockets.identity(fd))
    let reactor = try Reactor()
    let factory = Factory(Echo.self)
    let port = try reactor.adoptListeningSocket(fd, factory: factory)
    #expect(port.address.port == bound && port.address.host == "127.0.0.1", "the socket's own address")
    #expect(fcntl(fd, F_GETFL) & O_NONBLOCK != 0, "made non-blocking")
    _ = try echoOnce(reactor) { reactor.connectTCP("127.0.0.1", bound, factory: $0) }
    #expect(factory.counters.accepted == 1)
    port.stopListening()
    #expect(RawSockets.identity(fd) != identity, "stopListening closed the adopted descriptor")
  }

  @Test("an adopted UNIX-domain listening socket serves echo; its file is the maker's and stays")
  func adoptedUNIX() throws {
    var template = Array("/tmp/twine-adopt-XXXXXX".utf8CString)
    let folder = String(cString: try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }))
    let path = folder + "/adopted.sock"
    defer {
      unlink(path)
      rmdir(folder)
    }
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
    }
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    #expect(bound == 0 && listen(fd, 16) == 0)
    let reactor = try Reactor()
    let factory = Factory(Echo.self)
    let port = try reactor.adoptListeningSocket(fd, factory: factory)
    #expect(port.address.description.contains(path))
    _ = try echoOnce(reactor) { reactor.connectUNIX(path, factory: $0) }
    port.stopListening()
    #expect(access(path, F_OK) == 0, "the socket file is left to whoever made it")
    #expect(factory.counters.accepted == 1)
  }

  @Test("what is not a listening TCP or UNIX stream socket throws a clear error; the fd stays the caller's, untouched")
  func notAdoptable() throws {
    let reactor = try Reactor()
    let udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    let unbound = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var pair: [Int32] = [-1, -1]
    #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
    let (client, server) = try #require(RawSockets.connectedPair())
    var ends: [Int32] = [-1, -1]
    #expect(pipe(&ends) == 0)
    let netlink = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue), 0)
    defer { for fd in [udp, unbound, pair[0], pair[1], client, server, ends[0], ends[1], netlink] { close(fd) } }
    var cases: [(fd: Int32, code: Int32, says: String)] = [
      (udp, EPROTOTYPE, "not a stream socket"), (unbound, EINVAL, "not a listening socket"),
      (pair[0], EINVAL, "not a listening socket"), (server, EINVAL, "not a listening socket"),
      (ends[0], ENOTSOCK, ""), (-1, EBADF, ""),
    ]
    if netlink >= 0 { cases.append((netlink, EPROTOTYPE, "not a stream socket")) }
    let factory = Factory(Echo.self)
    for (fd, code, says) in cases {
      let identity = RawSockets.identity(fd)
      let flags = fcntl(fd, F_GETFL)
      #expect {
        try reactor.adoptListeningSocket(fd, factory: factory)
      } throws: { error in
        guard case TwineError.cannotAdopt(let badFD, let cause) = error else { return false }
        return badFD == fd && cause.code == code && "\(error)".hasPrefix("cannot adopt fd \(fd): ")
          && "\(error)".contains(says)
      }
      #expect(RawSockets.identity(fd) == identity, "fd \(fd) still open, still the caller's")
      #expect(fcntl(fd, F_GETFL) == flags, "fd \(fd) flags untouched")
    }
    #expect(reactor.ports.isEmpty && factory.numPorts == 0)
  }

  @Test("after shutdown, adopting throws .reactorShutDown and leaves the socket listening, the caller's")
  func adoptAfterShutdown() throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    _ = RawSockets.bindLoopback(fd)
    #expect(listen(fd, 4) == 0)
    let reactor = try Reactor()
    reactor.shutdown()
    #expect(throws: TwineError.self) { try reactor.adoptListeningSocket(fd, factory: Factory(Echo.self)) }
    #expect(fcntl(fd, F_GETFL) & O_NONBLOCK == 0, "untouched")
  }
}
