import ArgumentParser
import TutorialServers
import Twine
import TwineProtocols

/// `twine echo`: the tutorial's counting Echo.
struct EchoCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "echo",
    abstract: "Echo every byte back; past --max-connections, say 'Too many connections, try later' and close."
  )

  @OptionGroup var options: ServerOptions

  @Option(help: "Connections served at once; the next is refused.")
  var maxConnections: Int = 100

  @Flag(help: "Echo UDP datagrams, each back to its sender, instead of TCP connections.")
  var udp = false

  @Option(help: "Listen on this UNIX-domain socket path instead of TCP (--port and --interface are ignored).")
  var unix: String?

  @Option(help: ArgumentHelp("Serve TLS with this PEM certificate (chain); needs --tls-key.", valueName: "file"))
  var tlsCert: String?

  @Option(help: ArgumentHelp("The PEM private key of --tls-cert.", valueName: "file"))
  var tlsKey: String?

  @Option(
    help: ArgumentHelp(
      "TLS handshakes in progress at once (default: --max-connections); past it a connection is closed at once.",
      valueName: "n"))
  var maxHandshakes: Int?

  @Option(help: "Bytes per second each connection may read and write (libevent's token buckets).")
  var rateLimit: Int?

  @Option(help: "Bytes per second all connections together may read and write.")
  var totalRateLimit: Int?

  func validate() throws {
    guard maxConnections >= 0 else { throw ValidationError("--max-connections must be 0 or more") }
    if let maxHandshakes, maxHandshakes < 1 { throw ValidationError("--max-handshakes must be 1 or more") }
    guard !(udp && unix != nil) else { throw ValidationError("--udp and --unix cannot be used together") }
    guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
    guard tlsCert == nil || !udp else { throw ValidationError("--tls-cert cannot be used with --udp") }
    for (flag, value) in [("--rate-limit", rateLimit), ("--total-rate-limit", totalRateLimit)] {
      if let value, value <= 0 { throw ValidationError("\(flag) must be a positive number of bytes per second") }
    }
  }

  func run() throws {
    if udp { return try serveUDP(UDPEcho(), options) }
    if let unix { return try serveUNIX(streamFactory(), path: unix, options) }
    let tls = tlsCert.flatMap { cert in tlsKey.map { TLSOptions.server(certificateFile: cert, privateKeyFile: $0) } }
    try serve(streamFactory(), options, tls: tls, maxHandshakes: maxHandshakes ?? max(1, maxConnections))
  }

  /// The counting Echo, throttled when a rate limit was asked for.
  private func streamFactory() -> Factory {
    let echo = CountingFactory(maxConnections: maxConnections)
    guard rateLimit != nil || totalRateLimit != nil else { return echo }
    // A burst of a quarter second: a tick whose tokens were not all used (the peer was a
    // round trip behind) carries them over instead of losing them, so the measured rate
    // stays close to the configured one.
    func limit(_ rate: Int?) -> RateLimit? {
      rate.map { RateLimit(readBytesPerSecond: $0, writeBytesPerSecond: $0, burst: max(1, $0 / 4)) }
    }
    return ThrottlingFactory(wrapping: echo, perConnection: limit(rateLimit), total: limit(totalRateLimit))
  }
}
