import TutorialServers
import Twine

/// Serves `proto` on a UDP port as `options` say.
func serveUDP(_ proto: UDPEcho, _ options: ServerOptions) throws {
  var port: UDPPort?
  try serve(options) { reactor in
    let listening = try reactor.listenUDP(options.port, protocol: proto, interface: options.interface)
    port = listening
    return listening.host.description
  } summary: {
    ["truncated": "\(proto.truncated)", "droppedLoops": "\(port?.droppedLoops ?? 0)"]
  }
}
