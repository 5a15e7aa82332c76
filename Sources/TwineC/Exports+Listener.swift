import CTwineAPI
import Twine

// The C API's listener and stats calls (twine.h): on the reactor's thread.

/// The live listener behind `pointer`, on its reactor's thread; otherwise `body` is not run.
private func withListener(_ pointer: OpaquePointer?, _ function: String, _ body: (ListenerHandle) -> Int32) -> Int32 {
  guard let listener = ListenerHandle.table.get(pointer) else {
    return fail(
      .invalid,
      "\(function): "
        + (pointer == nil ? "listener is NULL" : "not a live twine_listener (freed, its reactor freed, or never made)"))
  }
  if let code = listener.reactor.wrongThread(function) { return code }
  return body(listener)
}

/// `twine_listener_pause`: stops accepting until resumed.
@_cdecl("twine_listener_pause")
public func twineListenerPause(_ listener: OpaquePointer?) -> Int32 {
  withListener(listener, "twine_listener_pause") { listener in
    listener.port.pauseAccepting()
    return ok
  }
}

/// `twine_listener_resume`: accepts again.
@_cdecl("twine_listener_resume")
public func twineListenerResume(_ listener: OpaquePointer?) -> Int32 {
  withListener(listener, "twine_listener_resume") { listener in
    listener.port.resumeAccepting()
    return ok
  }
}

/// `twine_listener_free`: closes the listening socket; its connections stay.
@_cdecl("twine_listener_free")
public func twineListenerFree(_ pointer: OpaquePointer?) -> Int32 {
  guard let pointer else { return ok }
  return withListener(pointer, "twine_listener_free") { listener in
    _ = ListenerHandle.table.remove(pointer)
    listener.stop()
    return ok
  }
}

/// `twine_listener_get_stats`: the port, whether paused, and the factory's counters.
@_cdecl("twine_listener_get_stats")
public func twineListenerStats(_ listener: OpaquePointer?, _ out: UnsafeMutablePointer<twine_listener_stats>?)
  -> Int32
{
  guard let out else { return fail(.invalid, "twine_listener_get_stats: out is NULL") }
  return withListener(listener, "twine_listener_get_stats") { listener in
    out.pointee = twine_listener_stats(
      port: Int32(listener.port.address.port), paused: listener.port.isPaused ? 1 : 0,
      factory: twine_counters(listener.factory.factory.counters))
    return ok
  }
}

/// `twine_reactor_get_stats`: connections open on the reactor, and its listeners.
@_cdecl("twine_reactor_get_stats")
public func twineReactorStats(_ reactor: OpaquePointer?, _ out: UnsafeMutablePointer<twine_reactor_stats>?) -> Int32 {
  guard let out else { return fail(.invalid, "twine_reactor_get_stats: out is NULL") }
  return withReactor(reactor, "twine_reactor_get_stats") { handle in
    let listeners = ListenerHandle.table.entries.count { $0.1.reactor === handle }
    let ports = handle.reactor.listeningPorts
    out.pointee = twine_reactor_stats(
      connections: Int64(handle.reactor.connectionCount), listeners: Int64(listeners),
      accepted: Int64(ports.reduce(0) { $0 + $1.stats.accepted }),
      refused: Int64(ports.reduce(0) { $0 + $1.stats.refused }),
      accept_errors: Int64(ports.reduce(0) { $0 + $1.stats.acceptErrors }),
      tls_handshake_failures: Int64(ports.reduce(0) { $0 + $1.failedHandshakes }))
    return ok
  }
}

extension twine_counters {
  /// The C struct of `counters` (each value read once, relaxed: exact, not a snapshot).
  init(_ counters: ConnectionCounters) {
    self.init(
      live: Int64(counters.live), accepted: Int64(counters.accepted), refused: Int64(counters.refused),
      bytes_in: Int64(counters.bytesIn), bytes_out: Int64(counters.bytesOut))
  }
}
