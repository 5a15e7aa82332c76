// The README's examples of "Drain, restart, certificate rotation", compiled here so they stay
// true (never run: each would serve on a fixed port until a signal).
import Glibc
import Logging
import ServiceLifecycle
import TutorialServers
import Twine
import TwineServiceLifecycle

enum ReadmeExamples {
  final class Polite: Protocol {
    override func dataReceived(_ data: RawSpan) { transport.write(data) }
    override func connectionDraining() {
      transport.write("bye\n")
      transport.loseConnection()
    }
  }

  static func drain(_ reactor: Reactor) throws {
    try reactor.listenTCP(8025, factory: Factory(Polite.self))
    try reactor.handleSignal(SIGTERM) {
      reactor.drain(timeout: 10) { result in  // "connections=100 cut=0 seconds=1.29"
        reactor.logger.info("drained \(result)")
        reactor.stop()
      }
    }
    reactor.run()
  }

  static func restart(_ reactor: Reactor) throws {
    // The old process:
    let control = try reactor.listenControl("/tmp/echo.control") {
      reactor.drain(timeout: 10) { _ in reactor.stop() }  // a successor holds the sockets now
    }
    // The new one, before run():
    let ports = try reactor.takeOverListeningSockets(from: "/tmp/echo.control", factory: Factory(Echo.self))
    _ = (control, ports)
  }

  static func rotate(_ reactor: Reactor, _ port: ListeningPort) throws {
    try port.reloadCertificate()
    _ = reactor.reloadCertificates()
  }

  static func service(_ logger: Logger) async throws {
    let echo = ReactorService(drainTimeout: 10) { reactor in  // runs on the reactor's thread
      try reactor.listenTCP(8025, factory: Factory(Echo.self))
    }
    let group = ServiceGroup(services: [echo], gracefulShutdownSignals: [.sigterm], logger: logger)
    try await group.run()  // SIGTERM: drain, then return
  }
}
