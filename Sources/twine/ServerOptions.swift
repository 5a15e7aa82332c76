import ArgumentParser
import Logging
import Twine

/// Options every server subcommand takes.
struct ServerOptions: ParsableArguments {
  // `.unconditional`: `--port -1` reads -1 as the value (and is refused by `validate`)
  // instead of taking it for a flag and reporting a missing value.
  @Option(parsing: .unconditional, help: "TCP port to listen on, 0...65535 (0 picks a free one).")
  var port: Int = 8025

  @Option(help: "Numeric IPv4 or IPv6 address to listen on.")
  var interface: String = "127.0.0.1"

  @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
  var logLevel: Logger.Level = .info

  /// --drain-timeout, --control, --takeover (LifecycleOptions.swift).
  @OptionGroup var lifecycle: LifecycleOptions
  @Option(
    help: ArgumentHelp(
      "Listen where this endpoint string says (tcp:PORT, unix:PATH, ssl:…, systemd:…, haproxy:…); repeatable. "
        + "Replaces --port, --interface, --unix, --udp and --tls-*.", valueName: "endpoint"))
  var listen: [String] = []

  @Option(
    parsing: .unconditional,
    help: ArgumentHelp("Serve Prometheus metrics on 127.0.0.1:PORT (0 picks a free one).", valueName: "port"))
  var metrics: Int?

  func validate() throws {
    guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535, not \(port)") }
    for text in listen {
      let endpoint: ServerEndpoint
      do {
        endpoint = try ServerEndpoint(text)
      } catch {
        throw ValidationError("--listen: \(error)")
      }
      // A successor serves the sockets it takes over with one factory and no TLS: plain endpoints only.
      switch endpoint {
      case .tcp, .tcp6, .unix: break
      default:
        guard lifecycle.takeover == nil else {
          throw ValidationError("--takeover with --listen takes over tcp:, tcp6: and unix: endpoints only, not \(text)")
        }
      }
    }
    if let metrics, !(0...65535).contains(metrics) {
      throw ValidationError("--metrics must be between 0 and 65535, not \(metrics)")
    }
  }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
