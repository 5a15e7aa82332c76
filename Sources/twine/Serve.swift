import ArgumentParser
import Glibc
import Logging
import Twine

/// Listens with `factory` as `options` say (over TLS with `tls`), prints `listening on HOST:PORT`,
/// and runs until SIGINT or SIGTERM; then closes every connection and returns (exit 0).
func serve(_ factory: Factory, _ options: ServerOptions, tls: TLSOptions? = nil) throws {
  var logger = Logger(label: "twine") { StreamLogHandler.standardError(label: $0) }
  logger.logLevel = options.logLevel
  do {
    let reactor = try Reactor(logger: logger)
    try reactor.installSignalHandlers()
    let port =
      try tls.map { try reactor.listenSSL(options.port, factory: factory, tls: $0, interface: options.interface) }
      ?? reactor.listenTCP(options.port, factory: factory, interface: options.interface)
    print("listening on \(port.address)")
    fflush(nil)  // the test harness and scripts wait for this line
    reactor.run()
    logger.info(
      "stopped",
      metadata: ["accepted": "\(factory.counters.accepted)", "refused": "\(factory.counters.refused)"])
  } catch {
    writeToStandardError("twine: \(error)\n")
    throw ExitCode(1)
  }
}

/// Writes `text` to standard error, unbuffered.
func writeToStandardError(_ text: String) {
  var text = text
  text.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
}
