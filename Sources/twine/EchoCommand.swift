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
  @OptionGroup var threading: ThreadOptions

  // Numeric options parse `.unconditional`ly, so `-1` is read as a value and refused by `validate`.
  @Option(parsing: .unconditional, help: "Connections served at once, 1 or more; the next is refused.")
  var maxConnections: Int = 100

  @Flag(help: "Echo UDP datagrams, each back to its sender, instead of TCP connections.")
  var udp = false

  @Flag(name: .customLong("async"), help: "Serve with the async API (TwineAsync) instead of callbacks.")
  var useAsync = false

  @Option(help: "Listen on this UNIX-domain socket path instead of TCP (--port and --interface are ignored).")
  var unix: String?

  @Option(help: ArgumentHelp("Serve TLS with this PEM certificate (chain); needs --tls-key.", valueName: "file"))
  var tlsCert: String?

  @Option(help: ArgumentHelp("The PEM private key of --tls-cert.", valueName: "file"))
  var tlsKey: String?

  @Option(
    help: ArgumentHelp(
      "A file whose first line is the pass phrase of an encrypted --tls-key (never asked for on the terminal).",
      valueName: "file"))
  var tlsKeyPasswordFile: String?

  @Option(
    parsing: .unconditional,
    help: ArgumentHelp(
      "TLS handshakes in progress at once (default: --max-connections); past it a connection is closed at once.",
      valueName: "n"))
  var maxHandshakes: Int?

  @Option(
    parsing: .unconditional,
    help: "Bytes per second each connection may read and write, 1...2147483647 (libevent's token buckets).")
  var rateLimit: Int?

  @Option(
    parsing: .unconditional, help: "Bytes per second all connections together may read and write, 1...2147483647.")
  var totalRateLimit: Int?

  func validate() throws {
    guard maxConnections >= 1 else {
      let why = maxConnections == 0 ? " (0 would refuse everyone)" : ""
      throw ValidationError("--max-connections must be at least 1, not \(maxConnections)\(why)")
    }
    if let maxHandshakes, maxHandshakes < 1 {
      throw ValidationError("--max-handshakes must be at least 1, not \(maxHandshakes)")
    }
    guard !(udp && unix != nil) else { throw ValidationError("--udp and --unix cannot be used together") }
    guard !useAsync || (options.listen.isEmpty && options.lifecycle.takeover == nil) else {
      throw ValidationError("--async listens with --port, --unix or --tls-*: not with --listen or --takeover")
    }
    guard !useAsync || (!udp && rateLimit == nil && totalRateLimit == nil) else {
      throw ValidationError(
        "--async serves TCP, TLS and UNIX without rate limits (not --udp, --rate-limit, --total-rate-limit)")
    }
    guard !udp || (options.lifecycle.control == nil && options.lifecycle.takeover == nil) else {
      throw ValidationError("--control and --takeover hand over stream sockets: not with --udp")
    }
    guard options.listen.isEmpty || (!udp && unix == nil && tlsCert == nil) else {
      throw ValidationError("--listen replaces --udp, --unix and --tls-cert (use udp:, unix: or ssl: endpoints)")
    }
    guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
    guard tlsCert == nil || !udp else { throw ValidationError("--tls-cert cannot be used with --udp") }
    guard tlsKeyPasswordFile == nil || tlsKey != nil else {
      throw ValidationError("--tls-key-password-file needs --tls-cert and --tls-key")
    }
    for (flag, value) in [("--rate-limit", rateLimit), ("--total-rate-limit", totalRateLimit)] {
      if let value, !(1...Self.maxRate).contains(value) {
        throw ValidationError("\(flag) must be between 1 and \(Self.maxRate) bytes per second, not \(value)")
      }
    }
    try validateThreads()
  }

  func run() throws {
    if threading.threads != 1 { return try runGroup() }
    if !options.listen.isEmpty { return try serveEndpoints(streamFactory(), options, datagram: { UDPEcho() }) }
    if udp { return try serveUDP(UDPEcho(), options) }
    if useAsync {
      return try serveAsyncEcho(
        options, maxConnections: maxConnections, unix: unix, tls: try tlsOptions(),
        maxHandshakes: maxHandshakes ?? maxConnections)
    }
    if let unix { return try serveUNIX(streamFactory(), path: unix, options) }
    try serve(streamFactory(), options, tls: try tlsOptions(), maxHandshakes: maxHandshakes ?? maxConnections)
  }

  /// The most bytes per second a rate limit may name: what libevent's token buckets hold.
  static let maxRate = Int(Int32.max)

  /// The TLS options the flags ask for, with the pass phrase read from its file; nil for plain TCP.
  func tlsOptions() throws -> TLSOptions? {
    guard let tlsCert, let tlsKey else { return nil }
    var tls = TLSOptions.server(certificateFile: tlsCert, privateKeyFile: tlsKey)
    if let file = tlsKeyPasswordFile {
      do {
        tls.privateKeyPassword = try readPassPhrase(file)
      } catch {
        writeToStandardError("twine: \(error)\n")
        throw ExitCode(1)
      }
    }
    return tls
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
