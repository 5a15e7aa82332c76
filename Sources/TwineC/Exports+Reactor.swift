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
    let handle = try ReactorHandle(base: base)
    guard let pointer = ReactorHandle.table.add(handle) else {
      handle.close()
      return fail(.libevent, "twine_reactor_new: too many live reactors")
    }
    out.pointee = pointer
    return ok
  } catch {
    return fail("twine_reactor_new", error)
  }
}

/// `twine_reactor_free`: shuts the reactor down (every event Twine added is removed), frees it,
/// and calls back every cross-thread call that had not run.
@_cdecl("twine_reactor_free")
public func twineReactorFree(_ reactor: OpaquePointer?) -> Int32 {
  reactorFree(reactor, "twine_reactor_free")
}

/// `twine_reactor_destroy`: the first release's name for ``twineReactorFree(_:)``.
@_cdecl("twine_reactor_destroy")
public func twineReactorDestroy(_ reactor: OpaquePointer?) -> Int32 {
  reactorFree(reactor, "twine_reactor_destroy")
}

private func reactorFree(_ reactor: OpaquePointer?, _ function: String) -> Int32 {
  guard let reactor else { return ok }
  return withReactor(reactor, function) { handle in
    guard !handle.sink.emitting else {
      return fail(.invalid, "\(function): called from inside the reactor's log callback")
    }
    // Out of the table first: from here on no call is accepted, and the handle is dead for good.
    _ = ReactorHandle.table.remove(reactor)
    ListenerHandle.freeAll(of: handle)
    handle.close()
    return ok
  }
}

/// `twine_reactor_bind_thread`: the calling thread becomes the reactor's.
@_cdecl("twine_reactor_bind_thread")
public func twineReactorBindThread(_ reactor: OpaquePointer?) -> Int32 {
  guard let handle = ReactorHandle.table.get(reactor) else {
    return fail(
      .invalid,
      "twine_reactor_bind_thread: "
        + (reactor == nil ? "reactor is NULL" : "not a live twine_reactor (destroyed, or never made)"))
  }
  guard handle.bindToCallingThread() else {
    return fail(
      .wrongThread,
      "twine_reactor_bind_thread: the reactor is bound to another thread already (its loop ran there, or it bound)")
  }
  return ok
}

/// `twine_set_log_callback`: where the reactor's log lines go from now on.
@_cdecl("twine_set_log_callback")
public func twineSetLogCallback(
  _ reactor: OpaquePointer?, _ callback: twine_log_fn?, _ context: UnsafeMutableRawPointer?, _ minLevel: Int32
) -> Int32 {
  withReactor(reactor, "twine_set_log_callback") { handle in
    guard let level = Logger.Level(cLevel: minLevel) else {
      return fail(
        .invalid, "twine_set_log_callback: min_level \(minLevel) is not a twine_log_level (0...6)")
    }
    handle.sink.minLevel = level
    handle.sink.redirect(to: callback.map { .callback($0, context) } ?? .discard)
    return ok
  }
}

/// `twine_call_from_thread`: queues `fn(context)` for the reactor's thread; safe from any thread.
@_cdecl("twine_call_from_thread")
public func twineCallFromThread(
  _ reactor: OpaquePointer?, _ fn: twine_thread_fn?, _ context: UnsafeMutableRawPointer?
) -> Int32 {
  guard let fn else { return fail(.invalid, "twine_call_from_thread: fn is NULL") }
  return callFromThread(reactor, PendingCalls.Call(function: .plain(fn), context: context), "twine_call_from_thread")
}

/// `twine_call_from_thread_or_cancel`: queues `fn(context, 0)`; `fn(context, 1)` if the reactor goes first.
@_cdecl("twine_call_from_thread_or_cancel")
public func twineCallFromThreadOrCancel(
  _ reactor: OpaquePointer?, _ fn: twine_call_fn?, _ context: UnsafeMutableRawPointer?
) -> Int32 {
  guard let fn else { return fail(.invalid, "twine_call_from_thread_or_cancel: fn is NULL") }
  return callFromThread(
    reactor, PendingCalls.Call(function: .cancellable(fn), context: context), "twine_call_from_thread_or_cancel")
}

private func callFromThread(_ reactor: OpaquePointer?, _ call: PendingCalls.Call, _ function: String) -> Int32 {
  guard let reactor else { return fail(.invalid, "\(function): reactor is NULL") }
  // Under the table's lock: a destroy waits until the call is both recorded and queued,
  // so it either runs or is called back as cancelled; the reactor is never released here.
  let queued = ReactorHandle.table.withLive(reactor) { handle -> Bool in
    let calls = handle.calls
    let id = calls.accept(call)
    guard handle.crossThread.callFromThread({ calls.run(id) }) else {
      calls.withdraw(id)
      return false
    }
    return true
  }
  switch queued {
  case nil: return fail(.invalid, "\(function): not a live twine_reactor (destroyed, or never made)")
  case false: return fail(.shutDown, "\(function): the reactor is shutting down")
  case true: return ok
  }
}
