import ArgumentParser
import Glibc
import Logging
import Twine

/// Listens on the UNIX-domain socket `path` with `factory`, prints `listening on PATH`,
/// and runs until SIGINT or SIGTERM; then closes every connection, removes the socket
/// file and returns (exit 0).
func serveUNIX(_ factory: Factory, path: String, _ options: ServerOptions) throws {
  var logger = Logger(label: "twine") { StreamLogHandler.standardError(label: $0) }
  logger.logLevel = options.logLevel
  do {
    let reactor = try Reactor(logger: logger)
    try reactor.installSignalHandlers()
    let port = try reactor.listenUNIX(path, factory: factory)
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
