import ArgumentParser
import Glibc
import Logging
import Twine

/// Like `serve(_:listen:summary:)`, with a group of `threads` reactors: starts them, stops
/// them all on SIGINT and SIGTERM, lets `listen` open the port on every one (it returns the
/// address to announce), prints `listening on ADDRESS`, waits until they have stopped, then
/// logs `stopped` with `summary()`'s fields and `acceptedPerReactor` (how the connections
/// were spread). Any error is one line on stderr and exit 1.
func serveGroup(
  _ options: ServerOptions, threads: Int, counters: ConnectionCounters, listen: (ReactorGroup) throws -> String,
  summary: () -> Logger.Metadata
) throws {
  signal(SIGHUP, SIG_IGN)
  var logger = Logger(label: "twine") { StreamLogHandler.standardError(label: $0) }
  logger.logLevel = options.logLevel
  do {
    let group = try ReactorGroup(threads: threads, logger: logger)
    try group.installSignalHandlers()
    print("listening on \(try listen(group))")
    fflush(nil)  // the test harness and scripts wait for this line
    group.run()
    var fields = summary()
    fields["acceptedPerReactor"] = "\(counters.acceptedPerStripe.map(String.init).joined(separator: ","))"
    logger.info("stopped", metadata: fields)
  } catch {
    writeToStandardError("twine: \(error)\n")
    throw ExitCode(1)
  }
}

/// Serves the factories `make` builds, one per reactor, on TCP as `options` say.
func serveGroup(
  _ options: ServerOptions, threads: Int, counters: ConnectionCounters,
  factory make: @escaping @Sendable (ReactorThread) -> Factory
) throws {
  try serveGroup(options, threads: threads, counters: counters) { group in
    try group.listenTCP(options.port, interface: options.interface, factory: make).address.description
  } summary: {
    ["accepted": "\(counters.accepted)", "refused": "\(counters.refused)"]
  }
}
