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

  func validate() throws {
    guard maxConnections >= 0 else { throw ValidationError("--max-connections must be 0 or more") }
  }

  func run() throws {
    if udp { return try serveUDP(UDPEcho(), options) }
    try serve(CountingFactory(maxConnections: maxConnections), options)
  }
}
