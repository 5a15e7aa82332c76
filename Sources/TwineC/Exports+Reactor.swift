import CTwineAPI
import Logging
import Twine

// The C API's reactor calls (twine.h). Each checks its handle and thread first.

/// The live reactor behind `pointer`, on its own thread; otherwise `body` is not run and the failure code is returned.
func withReactor(_ pointer: OpaquePointer?, _ function: String, _ body: (ReactorHandle) -> Int32) -> Int32 {
  guard let handle = ReactorHandle.table.get(pointer) else {
    return fail(
      .invalid,
      "\(function): " + (pointer == nil ? "reactor is NULL" : "not a live twine_reactor (destroyed, or never made)"))
  }
  if let code = handle.wrongThread(function) { return code }
  return body(handle)
}

/// `twine_reactor_new`: a reactor on the host's `event_base`.
@_cdecl("twine_reactor_new")
public func twineReactorNew(_ base: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  guard let out else { return fail(.invalid, "twine_reactor_new: out is NULL") }
  out.pointee = nil
  guard let base else { return fail(.invalid, "twine_reactor_new: base is NULL") }
  do {
    out.pointee = ReactorHandle.table.add(try ReactorHandle(base: base))
    return ok
  } catch {
    return fail("twine_reactor_new", error)
  }
}

/// `twine_reactor_destroy`: shuts the reactor down (every event Twine added is removed) and frees it.
@_cdecl("twine_reactor_destroy")
public func twineReactorDestroy(_ reactor: OpaquePointer?) -> Int32 {
  guard let reactor else { return ok }
  return withReactor(reactor, "twine_reactor_destroy") { handle in
    guard !handle.sink.emitting else {
      return fail(.invalid, "twine_reactor_destroy: called from inside the reactor's log callback")
    }
    _ = ReactorHandle.table.remove(reactor)
    handle.reactor.shutdown()
    return ok
  }
}

/// `twine_set_log_callback`: where the reactor's log lines go from now on.
@_cdecl("twine_set_log_callback")
public func twineSetLogCallback(
  _ reactor: OpaquePointer?, _ callback: twine_log_fn?, _ context: UnsafeMutableRawPointer?, _ minLevel: Int32
) -> Int32 {
  withReactor(reactor, "twine_set_log_callback") { handle in
    handle.sink.target = callback.map { .callback($0, context) } ?? .discard
    handle.sink.minLevel = Logger.Level(cLevel: minLevel)
    return ok
  }
}

/// `twine_call_from_thread`: queues `fn(context)` for the reactor's thread; safe from any thread.
@_cdecl("twine_call_from_thread")
public func twineCallFromThread(
  _ reactor: OpaquePointer?, _ fn: twine_thread_fn?, _ context: UnsafeMutableRawPointer?
) -> Int32 {
  guard let reactor else { return fail(.invalid, "twine_call_from_thread: reactor is NULL") }
  guard let fn else { return fail(.invalid, "twine_call_from_thread: fn is NULL") }
  let call = ThreadCall(fn: fn, context: context)
  // Under the table's lock: a destroy on the reactor's thread waits, and the reactor is never released here.
  switch ReactorHandle.table.withLive(reactor, { $0.crossThread.callFromThread { call.fn(call.context) } }) {
  case nil: return fail(.shutDown, "twine_call_from_thread: the reactor is destroyed (or was never made)")
  case false: return fail(.shutDown, "twine_call_from_thread: the reactor is shutting down")
  case true: return ok
  }
}

/// A C function and its context, handed to the reactor's thread (the host vouches for the context).
private struct ThreadCall: @unchecked Sendable {
  let fn: twine_thread_fn
  let context: UnsafeMutableRawPointer?
}
