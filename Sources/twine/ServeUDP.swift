import TutorialServers
import Twine

/// Serves `proto` on a UDP port as `options` say.
func serveUDP(_ proto: UDPEcho, _ options: ServerOptions) throws {
  try serve(options) { reactor in
    try reactor.listenUDP(options.port, protocol: proto, interface: options.interface).host.description
  } summary: {
    ["truncated": "\(proto.truncated)"]
  }
}
