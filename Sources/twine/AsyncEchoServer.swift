import Logging
import TutorialServers
import TwineAsync

/// `twine echo --async`: the counting Echo written with the async API (TutorialServers'
/// `serveAsyncEcho`), on TCP, TLS (with `tls`) or a UNIX socket (`unix`), in a task on the
/// reactor's thread; the same `listening on`/`stopped` lines as the callback server.
func serveAsyncEcho(
  _ options: ServerOptions, maxConnections: Int, unix: String?, tls: TLSOptions?, maxHandshakes: Int
) throws {
  var counters: ConnectionCounters?
  try serve(options) { reactor in
    let listener: AsyncListener
    if let unix {
      listener = try reactor.listen(unix: unix)
    } else if let tls {
      listener = try reactor.listen(
        tls: options.port, options: tls, interface: options.interface, maxPendingHandshakes: maxHandshakes)
    } else {
      listener = try reactor.listen(tcp: options.port, interface: options.interface)
    }
    counters = listener.counters
    Task(executorPreference: reactor.executor) { try? await serveAsyncEcho(listener, maxConnections: maxConnections) }
    return listener.address.description
  } summary: {
    ["accepted": "\(counters?.accepted ?? 0)", "refused": "\(counters?.refused ?? 0)"]
  }
}
