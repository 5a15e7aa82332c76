import Glibc
import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

@Suite("UNIX-domain stream sockets")
struct UNIXTests {
  /// Echoes `message` over a UNIX socket at `path` with a fresh reactor; the client's received bytes.
  func echo(_ message: [UInt8], at path: String) throws -> Client? {
    let reactor = try Reactor()
    try reactor.listenUNIX(path, factory: Factory(Echo.self))
    let clients = ClientMaker()
    clients.configure = { client in
      client.message = message
      client.expecting = message.count
      client.done = { _ in reactor.stop() }
    }
    clients.onFailure = { _ in reactor.stop() }
    reactor.connectUNIX(path, factory: clients)
    run(reactor)
    #expect(clients.failed.isEmpty)
    return clients.clients.first
  }

  @Test("Echo over a UNIX socket returns 1 MiB intact; addresses are the path and the unnamed client")
  func echoRoundTrip() throws {
    let folder = try SocketFolder()
    let path = folder.file("echo.sock")
    let reactor = try Reactor()
    let server = Factory(Echo.self)
    let port = try reactor.listenUNIX(path, factory: server)
    #expect(port.address == SocketAddress(.unix(path: path), port: 0))
    let message = pattern(1 << 20, seed: 3)
    let clients = ClientMaker()
    var clientPeer: SocketAddress?
    clients.configure = { client in
      client.message = message
      client.expecting = message.count
      client.done = { client in
        clientPeer = client.transport.peer
        reactor.stop()
      }
    }
    clients.onFailure = { _ in reactor.stop() }
    let connector = reactor.connectUNIX(path, factory: clients)
    run(reactor)
    let client = try #require(clients.clients.first)
    #expect(client.received == message)
    #expect(client.lostReason == .closedByUs)
    #expect(server.counters.bytesIn == message.count && server.counters.accepted == 1)
    #expect(clientPeer == SocketAddress(.unix(path: path), port: 0))
    #expect(connector.destination.host == path && connector.destination.port == 0)
  }

  @Test("a socket file left by a dead listener is replaced")
  func staleSocketReplaced() throws {
    let folder = try SocketFolder()
    let path = folder.file("stale.sock")
    let dead = try PlainUNIXSocket(path: path, listen: true)
    let staleInode = fileStatus(path)?.st_ino
    dead.close()
    #expect(isSocketFile(path), "closing a listener leaves its file")
    let client = try #require(try echo(Array("after the crash".utf8), at: path))
    #expect(client.received == Array("after the crash".utf8))
    #expect(staleInode != nil)
    #expect(!isSocketFile(path), "the new port removed its own file on shutdown")
  }

  @Test("a path where a live server accepts is refused, and the file and server are untouched")
  func liveServerRefused() throws {
    let folder = try SocketFolder()
    let path = folder.file("live.sock")
    let reactor = try Reactor()
    let first = try reactor.listenUNIX(path, factory: Factory(Echo.self))
    let inode = fileStatus(path)?.st_ino
    let error = #expect(throws: TwineError.self) { try reactor.listenUNIX(path, factory: Factory(Echo.self)) }
    guard case .cannotListenOnPath(let failedPath, let cause)? = error else {
      Issue.record("expected cannotListenOnPath, got \(String(describing: error))")
      return
    }
    #expect(failedPath == path && cause.code == EADDRINUSE)
    #expect(
      error?.description == "cannot listen on \(path): Address already in use (a server accepts connections there)")
    #expect(fileStatus(path)?.st_ino == inode)
    #expect(first.isListening)
    // A plain listener of another program is treated the same.
    let otherPath = folder.file("other.sock")
    let other = try PlainUNIXSocket(path: otherPath, listen: true)
    let otherInode = fileStatus(otherPath)?.st_ino
    #expect(throws: TwineError.self) { try reactor.listenUNIX(otherPath, factory: Factory(Echo.self)) }
    #expect(fileStatus(otherPath)?.st_ino == otherInode)
    // The first server still serves.
    let clients = ClientMaker()
    clients.configure = { client in
      client.message = Array("still there".utf8)
      client.expecting = 11
      client.done = { _ in reactor.stop() }
    }
    clients.onFailure = { _ in reactor.stop() }
    reactor.connectUNIX(path, factory: clients)
    run(reactor)
    #expect(clients.clients.first?.received == Array("still there".utf8))
    other.close()
  }

  @Test("a regular file at the path is refused and left as it was")
  func regularFileRefused() throws {
    let folder = try SocketFolder()
    let path = folder.file("precious.txt")
    let content = Array("do not delete me\n".utf8)
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    #expect(content.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == content.count)
    close(fd)
    let reactor = try Reactor()
    let error = #expect(throws: TwineError.self) { try reactor.listenUNIX(path, factory: Factory(Echo.self)) }
    #expect(error?.description == "cannot listen on \(path): File exists and is not a socket")
    let info = try #require(fileStatus(path))
    #expect(info.st_mode & S_IFMT == S_IFREG && Int(info.st_size) == content.count)
    #expect(reactor.ports.isEmpty)
  }

  @Test("the socket file gets the permission mode asked for", arguments: [0o600 as mode_t, 0o660, 0o666])
  func modeApplied(mode: mode_t) throws {
    let folder = try SocketFolder()
    let path = folder.file("mode.sock")
    let reactor = try Reactor()
    try reactor.listenUNIX(path, factory: Factory(Echo.self), mode: mode)
    let info = try #require(fileStatus(path))
    #expect(info.st_mode & S_IFMT == S_IFSOCK)
    #expect(info.st_mode & 0o7777 == mode)
  }

  @Test("peer credentials on both ends are this process's pid, uid and gid; TCP has none")
  func peerCredentials() throws {
    let folder = try SocketFolder()
    let path = folder.file("creds.sock")
    let reactor = try Reactor()
    var seen: [(peer: SocketAddress, credentials: PeerCredentials?)] = []
    let recorder = { [unowned reactor] (_: SocketAddress) in
      let recorder = CredentialRecorder()
      recorder.onMade = { peer, credentials in
        seen.append((peer, credentials))
        if seen.count == 3 { reactor.stop() }
      }
      return recorder
    }
    try reactor.listenUNIX(path, factory: Factory(recorder))
    reactor.connectUNIX(path, factory: ClientFactory(recorder))
    let tcpPort = try listen(reactor, Factory(Echo.self))
    reactor.connectTCP("127.0.0.1", tcpPort, factory: ClientFactory(recorder))
    run(reactor)
    let ours = PeerCredentials(pid: getpid(), uid: getuid(), gid: getgid())
    let unix = seen.filter { if case .unix = $0.peer.kind { true } else { false } }
    #expect(unix.count == 2)
    #expect(unix.allSatisfy { $0.credentials == ours }, "\(unix.map { String(describing: $0.credentials) })")
    #expect(unix.contains { $0.peer.host == path }, "the client's peer is the server's path")
    #expect(unix.contains { $0.peer.host == "" }, "the server's peer is the unnamed client socket")
    let tcp = seen.filter { if case .ipv4 = $0.peer.kind { true } else { false } }
    #expect(tcp.count == 1 && tcp.first?.credentials == nil)
  }

  @Test("TCP_NODELAY fails on a UNIX connection with a SocketError and the connection keeps working")
  func noDelayIsHarmless() throws {
    final class Prober: Protocol {
      private(set) var noDelayError: SocketError?
      override func connectionMade() {
        do throws(SocketError) { try transport.setTCPNoDelay(true) } catch { noDelayError = error }
        transport.write("probed")
      }
    }
    let folder = try SocketFolder()
    let path = folder.file("nodelay.sock")
    let reactor = try Reactor()
    var prober: Prober?
    try reactor.listenUNIX(
      path,
      factory: Factory { _ in
        let made = Prober()
        prober = made
        return made
      })
    let clients = ClientMaker()
    clients.configure = { client in
      client.expecting = 6
      client.done = { _ in reactor.stop() }
    }
    reactor.connectUNIX(path, factory: clients)
    run(reactor)
    #expect(clients.clients.first?.received == Array("probed".utf8))
    #expect(prober?.noDelayError?.code == EOPNOTSUPP)
  }

  @Test("stopListening and reactor shutdown remove the socket file")
  func fileRemovedOnStop() throws {
    let folder = try SocketFolder()
    let path = folder.file("gone.sock")
    let reactor = try Reactor()
    let port = try reactor.listenUNIX(path, factory: Factory(Echo.self))
    #expect(isSocketFile(path))
    port.stopListening()
    #expect(fileStatus(path) == nil)
    let second = folder.file("shutdown.sock")
    try reactor.listenUNIX(second, factory: Factory(Echo.self))
    reactor.shutdown()
    #expect(fileStatus(second) == nil)
  }

  @Test("stopping does not remove a file that replaced the port's socket meanwhile")
  func replacedFileIsKept() throws {
    let folder = try SocketFolder()
    let path = folder.file("replaced.sock")
    let reactor = try Reactor()
    let port = try reactor.listenUNIX(path, factory: Factory(Echo.self))
    unlink(path)
    let other = try PlainUNIXSocket(path: path, listen: true)
    port.stopListening()
    #expect(isSocketFile(path), "someone else's socket stays")
    other.close()
  }

  @Test("connecting fails with a clear reason: missing path (ENOENT), dead socket (refused), path too long")
  func connectFailures() throws {
    let folder = try SocketFolder()
    let reactor = try Reactor()
    let missing = ClientMaker()
    reactor.connectUNIX(folder.file("missing.sock"), factory: missing)
    let stalePath = folder.file("dead.sock")
    try PlainUNIXSocket(path: stalePath, listen: true).close()
    let dead = ClientMaker()
    reactor.connectUNIX(stalePath, factory: dead)
    let tooLong = ClientMaker()
    reactor.connectUNIX("/tmp/" + String(repeating: "x", count: 200), factory: tooLong)
    reactor.callLater(0.2) { reactor.stop() }
    run(reactor)
    #expect(missing.failed.count == 1)
    if case .error(let cause)? = missing.failed.first {
      #expect(cause.code == ENOENT)
      #expect(cause.message == "No such file or directory")
    } else {
      Issue.record("missing path: \(missing.failed)")
    }
    #expect(dead.failed == [.connectionRefused])
    #expect(tooLong.failed.first?.description.contains("not a usable socket path") == true, "\(tooLong.failed)")
    #expect(reactor.connections.isEmpty)
  }

  @Test("listening in a folder that does not exist throws with ENOENT and leaves nothing behind")
  func missingFolder() throws {
    let reactor = try Reactor()
    let error = #expect(throws: TwineError.self) {
      try reactor.listenUNIX("/tmp/twine-no-such-folder-\(getpid())/x.sock", factory: Factory(Echo.self))
    }
    guard case .cannotListenOnPath(_, let cause)? = error else {
      Issue.record("expected cannotListenOnPath, got \(String(describing: error))")
      return
    }
    #expect(cause.code == ENOENT)
    #expect(reactor.ports.isEmpty)
  }
}
