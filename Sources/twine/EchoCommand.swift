import ArgumentParser
import TutorialServers
import Twine

/// `twine echo`: the tutorial's counting Echo.
struct EchoCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "echo",
    abstract: "Echo every byte back; past --max-connections, say 'Too many connections, try later' and close."
  )

  @OptionGroup var options: ServerOptions

  @Option(help: "Connections served at once; the next is refused.")
  var maxConnections: Int = 100

  @Option(help: ArgumentHelp("Serve TLS with this PEM certificate (chain); needs --tls-key.", valueName: "file"))
  var tlsCert: String?

  @Option(help: ArgumentHelp("The PEM private key of --tls-cert.", valueName: "file"))
  var tlsKey: String?

  func validate() throws {
    guard maxConnections >= 0 else { throw ValidationError("--max-connections must be 0 or more") }
    guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
  }

  func run() throws {
    let tls = tlsCert.flatMap { cert in tlsKey.map { TLSOptions.server(certificateFile: cert, privateKeyFile: $0) } }
    try serve(CountingFactory(maxConnections: maxConnections), options, tls: tls)
  }
}
