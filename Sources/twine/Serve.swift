import ArgumentParser
import Glibc
import Logging
import Twine

/// Makes a reactor that stops on SIGINT, drains on SIGTERM and reloads certificates on SIGHUP
/// (Lifecycle.swift), lets `listen` open its port (it returns the address to announce; several
/// lines after a takeover), prints `listening on ADDRESS`, opens the `--control` socket, and
/// runs until a signal or a drain ends; then closes everything, logs `stopped` with `summary()`'s
/// fields and returns (exit 0). Any error is one line on stderr and exit 1.
func serve(
  _ options: ServerOptions, listen: (Reactor) throws -> String, summary: () -> Logger.Metadata
) throws {
  // A closed terminal or a `kill -HUP` must not kill the server (nor leave a UNIX socket
  // file behind) before its handler (a certificate reload) is installed.
  signal(SIGHUP, SIG_IGN)
  var logger = Logger(label: "twine") { StreamLogHandler.standardError(label: $0) }
  logger.logLevel = options.logLevel
  do {
    let reactor = try Reactor(logger: logger)
    try options.lifecycle.installSignals(on: reactor)
    print("listening on \(try listen(reactor))")
    if let port = options.metrics { print("metrics on \(try serveMetrics(reactor, port: port))") }
    fflush(nil)  // the test harness and scripts wait for this line
    try options.lifecycle.openControl(on: reactor)
    reactor.run()
    logger.info("stopped", metadata: summary())
  } catch {
    writeToStandardError("twine: \(error)\n")
    throw ExitCode(1)
  }
}

/// Serves `factory` on TCP as `options` say (over TLS with `tls`, at most `maxHandshakes`
/// handshakes in progress at once).
func serve(_ factory: Factory, _ options: ServerOptions, tls: TLSOptions? = nil, maxHandshakes: Int = 1024) throws {
  if !options.listen.isEmpty { return try serveEndpoints(factory, options) }
  try serve(options) { reactor in
    if let taken = try options.lifecycle.takeOver(reactor, factory: factory, tls: tls, maxHandshakes: maxHandshakes) {
      return taken
    }
    guard let tls else {
      return try reactor.listenTCP(options.port, factory: factory, interface: options.interface).address.description
    }
    do {
      let port = try reactor.listenSSL(options.port, factory: factory, tls: tls, interface: options.interface)
      port.maxPendingHandshakes = maxHandshakes
      return port.address.description
    } catch TwineError.tls(let reason) where reason.hasSuffix(TLSOptions.encryptedKeyWithoutPassPhrase) {
      throw TwineError.tls(reason + "; give its pass phrase with --tls-key-password-file")
    }
  } summary: {
    counts(factory)
  }
}

/// The factory's accepted and refused counts, for the `stopped` line.
func counts(_ factory: Factory) -> Logger.Metadata {
  ["accepted": "\(factory.counters.accepted)", "refused": "\(factory.counters.refused)"]
}

/// Writes `text` to standard error, unbuffered.
func writeToStandardError(_ text: String) {
  var text = text
  text.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
}
