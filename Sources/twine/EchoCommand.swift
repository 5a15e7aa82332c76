import ArgumentParser
import TutorialServers

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

  func validate() throws {
    guard maxConnections >= 0 else { throw ValidationError("--max-connections must be 0 or more") }
    guard !(udp && unix != nil) else { throw ValidationError("--udp and --unix cannot be used together") }
  }

  func run() throws {
    if udp { return try serveUDP(UDPEcho(), options) }
    if let unix { return try serveUNIX(CountingFactory(maxConnections: maxConnections), path: unix, options) }
    try serve(CountingFactory(maxConnections: maxConnections), options)
  }
}
