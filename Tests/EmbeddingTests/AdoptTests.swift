import CLibevent
import Glibc
import LoopbackTestSupport
import Synchronization
import Testing
import TutorialServers

@testable import Twine

/// `adoptStreamSocket`: serving sockets a host accepted or connected itself, and who owns them.
@Suite("Adopting sockets")
struct AdoptTests {
  @Test("an adopted accepted fd serves echo to a plain peer; Twine closes the fd when the connection ends")
  func adoptedAcceptedSocket() throws {
    let (client, server) = try #require(RawSockets.connectedPair())
    defer { close(client) }
    let serverIdentity = try #require(RawSockets.identity(server))
    let reactor = try Reactor()
    let factory = Factory(Echo.self)
    let transport = try reactor.adoptStreamSocket(server, factory: factory)
    #expect(transport?.peer.port != 0)
    #expect(fcntl(server, F_GETFL) & O_NONBLOCK != 0, "made non-blocking")
    let message = pattern(200_000, seed: 3)
    let echoed = Mutex<[UInt8]>([])
    let peerEnd = Mutex<Int>(-1)
    let door = reactor.crossThread
    nonisolated(unsafe) let unsafeReactor = reactor
    RawSockets.setReceiveTimeout(client, seconds: 20)
    let peer = startThread {
      let writer = startThread { _ = RawSockets.sendAll(client, message) }
      let got = RawSockets.receive(client, count: message.count)
      pthread_join(writer, nil)
      shutdown(client, Int32(SHUT_WR))
      var byte: UInt8 = 0
      let end = recv(client, &byte, 1, 0)
      echoed.withLock { $0 = got }
      peerEnd.withLock { $0 = end }
      door.callFromThread { unsafeReactor.callLater(0.05) { unsafeReactor.stop() } }
    }
    run(reactor)
    pthread_join(peer, nil)
    #expect(echoed.withLock { $0 == message })
    #expect(peerEnd.withLock { $0 } == 0, "the peer read the end of the stream")
    #expect(factory.counters.accepted == 1 && factory.counters.live == 0)
    #expect(factory.counters.bytesIn == message.count)
    #expect(RawSockets.identity(server) != serverIdentity, "Twine closed the adopted socket")
  }

  @Test("an adopted connected fd works as a client of a Twine listener; Twine closes it after loseConnection")
  func adoptedConnectedSocket() throws {
    let reactor = try Reactor()
    let server = Factory(Echo.self)
    let port = try listen(reactor, server)
    let fd = try #require(RawSockets.connect(port: port))
    let identity = try #require(RawSockets.identity(fd))
    let clients = ClientMaker()
    let message = pattern(100_000, seed: 9)
    clients.configure = { client in
      client.message = message
      client.expecting = message.count
      client.done = { _ in reactor.callLater(0.05) { reactor.stop() } }
    }
    let transport = try #require(try reactor.adoptStreamSocket(fd, factory: clients))
    #expect(transport.peer.port == port)
    run(reactor)
    let client = try #require(clients.clients.first)
    #expect(client.received == message)
    #expect(client.lostReason == .closedByUs)
    #expect(clients.failed.isEmpty && clients.numPorts == 0, "no connector: a client factory serves as a plain one")
    #expect(server.counters.bytesIn == message.count)
    #expect(RawSockets.identity(fd) != identity, "Twine closed the adopted socket")
  }

  @Test("adopting what is not a connected stream socket throws; the fd stays the caller's, untouched")
  func notAdoptable() throws {
    let reactor = try Reactor()
    let udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    let listening = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    _ = RawSockets.bindLoopback(listening)
    #expect(listen(listening, 1) == 0)
    var ends: [Int32] = [-1, -1]
    #expect(pipe(&ends) == 0)
    defer { for fd in [udp, listening, ends[0], ends[1]] { close(fd) } }
    let cases: [(fd: Int32, codes: [Int32])] = [
      (udp, [EPROTOTYPE]), (listening, [ENOTCONN]), (ends[0], [ENOTSOCK]), (-1, [EBADF]),
    ]
    let factory = Factory(Echo.self)
    for (fd, codes) in cases {
      let identity = RawSockets.identity(fd)
      let flags = fcntl(fd, F_GETFL)
      #expect {
        try reactor.adoptStreamSocket(fd, factory: factory)
      } throws: { error in
        guard case TwineError.cannotAdopt(let badFD, let cause) = error else { return false }
        return badFD == fd && codes.contains(cause.code) && "\(error)".hasPrefix("cannot adopt fd \(fd): ")
      }
      #expect(RawSockets.identity(fd) == identity, "fd \(fd) still open, still the caller's")
      #expect(fcntl(fd, F_GETFL) == flags, "fd \(fd) flags untouched")
    }
    #expect(reactor.connections.isEmpty)
    #expect(factory.counters.accepted == 0 && factory.counters.refused == 0)
  }

  @Test("a socket the factory refuses is closed by Twine and counted as refused")
  func refusedAdoption() throws {
    final class Refusing: Factory {
      override func buildProtocol(_ peer: SocketAddress) -> Protocol? { nil }
    }
    let (client, server) = try #require(RawSockets.connectedPair())
    defer { close(client) }
    let identity = try #require(RawSockets.identity(server))
    let reactor = try Reactor()
    let factory = Refusing(Echo.self)
    #expect(try reactor.adoptStreamSocket(server, factory: factory) == nil)
    #expect(factory.counters.refused == 1 && factory.counters.accepted == 0)
    #expect(RawSockets.identity(server) != identity, "Twine closed the refused socket")
    RawSockets.setReceiveTimeout(client, seconds: 20)
    var byte: UInt8 = 0
    #expect(recv(client, &byte, 1, 0) == 0, "the peer reads the end of the stream")
  }

  @Test("after shutdown, adopting throws .reactorShutDown and leaves the fd to the caller")
  func adoptAfterShutdown() throws {
    let (client, server) = try #require(RawSockets.connectedPair())
    defer {
      close(client)
      close(server)
    }
    let identity = RawSockets.identity(server)
    let reactor = try Reactor()
    reactor.shutdown()
    #expect(throws: TwineError.self) { try reactor.adoptStreamSocket(server, factory: Factory(Echo.self)) }
    #expect(RawSockets.identity(server) == identity)
  }

  @Test("an adopted bufferevent: its input is delivered, its queued output goes first, Twine frees it and its socket")
  func adoptedBufferevent() throws {
    let host = HostLoop(tickEvery: 0.01)
    let (client, server) = try #require(RawSockets.connectedPair())
    defer { close(client) }
    let identity = try #require(RawSockets.identity(server))
    evutil_make_socket_nonblocking(server)
    let bev = try #require(bufferevent_socket_new(host.base, server, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)))
    // The host has read some of the stream already, and queued a reply of its own.
    bufferevent_enable(bev, Int16(EV_READ))
    #expect(RawSockets.sendAll(client, Array("early ".utf8)))
    #expect(host.run { evbuffer_get_length(bufferevent_get_input(bev)) == 6 })
    bufferevent_disable(bev, Int16(EV_READ | EV_WRITE))
    let greeting = Array("hello from C\n".utf8)
    bufferevent_write(bev, greeting, greeting.count)
    let reactor = try Reactor(borrowing: host.base)
    let factory = Factory(Echo.self)
    let transport = try #require(try reactor.adoptBufferevent(bev, factory: factory))
    #expect(transport.peer.port > 0)
    #expect(RawSockets.sendAll(client, Array("late".utf8)))
    #expect(host.run { factory.counters.bytesOut == 10 })
    let expected = greeting + Array("early late".utf8)
    #expect(RawSockets.receive(client, count: expected.count) == expected)
    shutdown(client, Int32(SHUT_WR))
    #expect(host.run { factory.counters.live == 0 })
    #expect(RawSockets.identity(server) != identity, "freeing the bufferevent closed its socket")
    #expect(factory.counters.accepted == 1 && factory.counters.bytesIn == 10)
    reactor.shutdown()
    event_base_loop(host.base, EVLOOP_NONBLOCK)  // libevent's finalizers of freed bufferevents
    #expect(host.eventCount == 1)
  }

  @Test("a bufferevent on another base, without a socket or not connected is refused; it stays the caller's")
  func bufferEventNotAdoptable() throws {
    let host = HostLoop(tickEvery: 1)
    let other = HostLoop(tickEvery: 1)
    let reactor = try Reactor(borrowing: host.base)
    let factory = Factory(Echo.self)
    let (client, server) = try #require(RawSockets.connectedPair())
    defer { close(client) }
    let unconnected = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    let cases: [(OpaquePointer?, String)] = [
      (bufferevent_socket_new(other.base, server, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)), "another event_base"),
      (bufferevent_socket_new(host.base, -1, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)), "has no socket"),
      (bufferevent_socket_new(host.base, unconnected, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)), "not connected"),
    ]
    for (bev, why) in cases {
      let bev = try #require(bev)
      #expect {
        try reactor.adoptBufferevent(bev, factory: factory)
      } throws: { error in
        guard case TwineError.cannotAdoptBufferevent(let text) = error else { return false }
        return text.contains(why)
      }
      bufferevent_free(bev)  // still ours: freeing it here must be the only free (ASan checks)
    }
    #expect(reactor.connections.isEmpty && factory.counters.accepted == 0)
  }
}
