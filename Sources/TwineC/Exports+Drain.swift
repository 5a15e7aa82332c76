import CTwineAPI
import Twine

// The C API's graceful stop (twine.h): on the reactor's thread.

/// `twine_reactor_drain`: stops accepting, tells each protocol, waits up to `timeout` seconds
/// for the connections to close, cuts the rest, then calls `done(context, 0)`; a reactor
/// freed before that calls `done(context, 1)` from its free (exactly once either way).
@_cdecl("twine_reactor_drain")
public func twineReactorDrain(
  _ reactor: OpaquePointer?, _ timeout: Double, _ done: twine_call_fn?, _ context: UnsafeMutableRawPointer?
) -> Int32 {
  guard timeout >= 0, timeout.isFinite else {
    return fail(.invalid, "twine_reactor_drain: timeout must be 0 or more seconds, not \(timeout)")
  }
  return withReactor(reactor, "twine_reactor_drain") { handle in
    var call: UInt64?
    if let done {
      // Held as an accepted call: the drain's end runs it, a free first cancels it.
      call = handle.calls.accept(PendingCalls.Call(function: .cancellable(done), context: context))
    }
    let calls = handle.calls
    handle.reactor.drain(timeout: timeout) { _ in
      if let call { calls.run(call) }
    }
    return ok
  }
}
