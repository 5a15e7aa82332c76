import ArgumentParser
import Glibc
import Logging
import TutorialServers
import Twine

/// Binds a UDP port for `proto` as `options` say, prints `listening on HOST:PORT`, and
/// runs until SIGINT or SIGTERM; then closes the port and returns (exit 0).
func serveUDP(_ proto: UDPEcho, _ options: ServerOptions) throws {
  var logger = Logger(label: "twine") { StreamLogHandler.standardError(label: $0) }
  logger.logLevel = options.logLevel
  do {
    let reactor = try Reactor(logger: logger)
    try reactor.installSignalHandlers()
    let port = try reactor.listenUDP(options.port, protocol: proto, interface: options.interface)
    print("listening on \(port.host)")
    fflush(nil)  // the test harness and scripts wait for this line
    reactor.run()
    logger.info("stopped", metadata: ["truncated": "\(proto.truncated)"])
  } catch {
    writeToStandardError("twine: \(error)\n")
    throw ExitCode(1)
  }
}
