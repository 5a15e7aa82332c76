import Glibc
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import TutorialServers
import Twine
import TwineServiceLifecycle

/// `ReactorService` under a real `ServiceGroup`: graceful shutdown drains, cancellation closes at once.
@Suite("Twine reactor as a swift-service-lifecycle Service")
struct ReactorServiceTests {
  /// The port the service's setup listened on, for the test's plain clients.
  final class Ports: Sendable {
    let port = Atomic<Int>(0)
  }

  /// An echo service on a free loopback port, recorded in `ports`.
  static func echoService(_ ports: Ports, drainTimeout: Double) -> ReactorService {
    ReactorService(drainTimeout: drainTimeout, logger: Logger(label: "test")) { reactor in
      let port = try reactor.listenTCP(0, factory: Factory(Echo.self), interface: "127.0.0.1")
      ports.port.store(port.address.port, ordering: .releasing)
    }
  }

  /// A blocking loopback client: the socket, or the connect's errno (negated).
  static func connect(_ port: Int) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
    var timeout = timeval(tv_sec: 20, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    let code = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 ? 0 : errno
      }
    }
    guard code == 0 else {
      close(fd)
      return -code
    }
    return fd
  }

  /// Sends `text` on `fd` and reads as many bytes back ("" at end of stream or error).
  static func echo(_ fd: Int32, _ text: String) -> String {
    let bytes = Array(text.utf8)
    guard send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else { return "" }
    var got: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 256)
    while got.count < bytes.count {
      let count = recv(fd, &buffer, buffer.count, 0)
      guard count > 0 else { break }
      got += buffer[..<count]
    }
    return String(decoding: got, as: UTF8.self)
  }

  /// Waits (polling) until `condition` holds or `seconds` pass.
  static func eventually(_ seconds: Double, _ condition: () -> Bool) async -> Bool {
    for _ in 0..<Int(seconds * 100) {
      if condition() { return true }
      try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
  }

  @Test("the group's graceful shutdown drains: new connects refused, an open connection finishes, then run returns")
  func gracefulShutdownDrains() async throws {
    let ports = Ports()
    let group = ServiceGroup(
      services: [Self.echoService(ports, drainTimeout: 30)], logger: Logger(label: "test"))
    let running = Task { try await group.run() }
    #expect(await Self.eventually(20) { ports.port.load(ordering: .acquiring) != 0 })
    let port = ports.port.load(ordering: .acquiring)
    let client = Self.connect(port)
    #expect(client >= 0 && Self.echo(client, "before") == "before")

    let began = ContinuousClock.now
    await group.triggerGracefulShutdown()
    let refused = await Self.eventually(20) {
      let probe = Self.connect(port)
      if probe >= 0 { close(probe) }  // made before the drain began: it must not hold the drain up
      return probe == -ECONNREFUSED
    }
    #expect(refused, "the listener closed at once")
    #expect(Self.echo(client, "during the drain") == "during the drain", "the open connection is still served")
    close(client)  // the last connection ends: the drain is over
    try await running.value
    #expect(ContinuousClock.now - began < .seconds(20), "ended with the connection, not at the 30 s deadline")
  }

  @Test("cancelling the group's task closes every connection at once")
  func cancellationClosesAtOnce() async throws {
    let ports = Ports()
    let group = ServiceGroup(
      services: [Self.echoService(ports, drainTimeout: 600)], logger: Logger(label: "test"))
    let running = Task { try await group.run() }
    #expect(await Self.eventually(20) { ports.port.load(ordering: .acquiring) != 0 })
    let client = Self.connect(ports.port.load(ordering: .acquiring))
    defer { close(client) }
    #expect(Self.echo(client, "hi") == "hi")
    running.cancel()
    _ = try? await running.value
    var byte: UInt8 = 0
    #expect(recv(client, &byte, 1, 0) == 0, "closed (FIN), not left open for the drain")
  }

  @Test("a setup that throws makes run throw it")
  func setupErrorSurfaces() async throws {
    struct SetupFailed: Error {}
    let service = ReactorService(logger: Logger(label: "test")) { _ in throw SetupFailed() }
    await #expect(throws: SetupFailed.self) { try await service.run() }
  }
}
