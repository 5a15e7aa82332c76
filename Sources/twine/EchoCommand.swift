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

  @Option(help: "Bytes per second each connection may read and write (libevent's token buckets).")
  var rateLimit: Int?

  @Option(help: "Bytes per second all connections together may read and write.")
  var totalRateLimit: Int?

  func validate() throws {
    guard maxConnections >= 0 else { throw ValidationError("--max-connections must be 0 or more") }
    guard !(udp && unix != nil) else { throw ValidationError("--udp and --unix cannot be used together") }
    for (flag, value) in [("--rate-limit", rateLimit), ("--total-rate-limit", totalRateLimit)] {
      if let value, value <= 0 { throw ValidationError("\(flag) must be a positive number of bytes per second") }
    }
  }

  func run() throws {
    if udp { return try serveUDP(UDPEcho(), options) }
    if let unix { return try serveUNIX(streamFactory(), path: unix, options) }
    try serve(streamFactory(), options)
  }

  /// The counting Echo, throttled when a rate limit was asked for.
  private func streamFactory() -> Factory {
    let echo = CountingFactory(maxConnections: maxConnections)
    guard rateLimit != nil || totalRateLimit != nil else { return echo }
    // A burst of one 0.1 s tick: the measured rate stays close to the configured one.
    func limit(_ rate: Int?) -> RateLimit? {
      rate.map { RateLimit(readBytesPerSecond: $0, writeBytesPerSecond: $0, burst: max(1, $0 / 10)) }
    }
    return ThrottlingFactory(wrapping: echo, perConnection: limit(rateLimit), total: limit(totalRateLimit))
  }
}
