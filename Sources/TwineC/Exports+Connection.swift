import CTwineAPI
import Glibc
import Twine

// The C API for protocols written in C (twine.h): a factory of C callbacks, and the calls a
// callback makes on its connection (on the connection's thread).

/// `twine_factory_new_callbacks`: a factory whose protocol is the host's C callbacks.
@_cdecl("twine_factory_new_callbacks")
public func twineFactoryNewCallbacks(
  _ callbacks: UnsafePointer<twine_protocol_callbacks>?, _ context: UnsafeMutableRawPointer?,
  _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
  guard let out else { return fail(.invalid, "twine_factory_new_callbacks: out is NULL") }
  out.pointee = nil
  guard let callbacks else { return fail(.invalid, "twine_factory_new_callbacks: callbacks is NULL") }
  let set = CallbackSet(raw: callbacks.pointee, context: context)
  guard set.raw.max_frame_length <= Int32.max else {
    return fail(.invalid, "twine_factory_new_callbacks: max_frame_length \(set.raw.max_frame_length) is over 2^31 - 1")
  }
  guard let factory = callbackFactory(set, framing: set.raw.framing, maxFrameLength: Int(set.raw.max_frame_length))
  else {
    return fail(.invalid, "twine_factory_new_callbacks: framing \(set.raw.framing) is not a twine_framing (0...4)")
  }
  guard let pointer = FactoryHandle.table.add(FactoryHandle(factory: factory, name: "callbacks")) else {
    return fail(.libevent, "twine_factory_new_callbacks: too many live factories")
  }
  out.pointee = pointer
  return ok
}

/// The live connection behind `pointer`, on its thread; otherwise `body` is not run and the failure code is returned.
private func withConnection(_ pointer: OpaquePointer?, _ function: String, _ body: (ConnectionHandle) -> Int32)
  -> Int32
{
  guard let handle = ConnectionHandle.table.get(pointer) else {
    return fail(
      .invalid,
      "\(function): "
        + (pointer == nil ? "connection is NULL" : "not a live twine_connection (its connection_lost returned)"))
  }
  guard pthread_equal(pthread_self(), handle.thread) != 0 else {
    return fail(.wrongThread, "\(function) called from another thread than the connection's reactor")
  }
  return body(handle)
}

/// `twine_connection_write`: queues bytes as they are.
@_cdecl("twine_connection_write")
public func twineConnectionWrite(_ connection: OpaquePointer?, _ data: UnsafeRawPointer?, _ length: Int) -> Int32 {
  withConnection(connection, "twine_connection_write") { handle in
    guard data != nil || length == 0 else { return fail(.invalid, "twine_connection_write: data is NULL") }
    handle.proto?.transport.write(UnsafeRawBufferPointer(start: data, count: length).bytes)
    return ok
  }
}

/// `twine_connection_send_frame`: one frame in the factory's framing.
@_cdecl("twine_connection_send_frame")
public func twineConnectionSendFrame(_ connection: OpaquePointer?, _ data: UnsafeRawPointer?, _ length: Int)
  -> Int32
{
  withConnection(connection, "twine_connection_send_frame") { handle in
    guard data != nil || length == 0 else { return fail(.invalid, "twine_connection_send_frame: data is NULL") }
    guard handle.sendFrame(UnsafeRawBufferPointer(start: data, count: length).bytes) else {
      return fail(.invalid, "twine_connection_send_frame: \(length) bytes do not fit the length prefix")
    }
    return ok
  }
}

/// `twine_connection_lose_connection`: closes after the queued bytes are written.
@_cdecl("twine_connection_lose_connection")
public func twineConnectionLoseConnection(_ connection: OpaquePointer?) -> Int32 {
  withConnection(connection, "twine_connection_lose_connection") { handle in
    handle.proto?.transport.loseConnection()
    return ok
  }
}

/// `twine_connection_abort`: closes at once.
@_cdecl("twine_connection_abort")
public func twineConnectionAbort(_ connection: OpaquePointer?) -> Int32 {
  withConnection(connection, "twine_connection_abort") { handle in
    handle.proto?.transport.abortConnection()
    return ok
  }
}

/// `twine_connection_pause`: stops delivering input.
@_cdecl("twine_connection_pause")
public func twineConnectionPause(_ connection: OpaquePointer?) -> Int32 {
  withConnection(connection, "twine_connection_pause") { handle in
    handle.setPaused(true)
    return ok
  }
}

/// `twine_connection_resume`: delivers input again.
@_cdecl("twine_connection_resume")
public func twineConnectionResume(_ connection: OpaquePointer?) -> Int32 {
  withConnection(connection, "twine_connection_resume") { handle in
    handle.setPaused(false)
    return ok
  }
}

/// `twine_connection_peer`: the peer's numeric host and port.
@_cdecl("twine_connection_peer")
public func twineConnectionPeer(
  _ connection: OpaquePointer?, _ host: UnsafeMutablePointer<CChar>?, _ size: Int, _ port: UnsafeMutablePointer<Int32>?
) -> Int32 {
  withConnection(connection, "twine_connection_peer") { handle in
    guard let host else { return fail(.invalid, "twine_connection_peer: host is NULL") }
    guard let peer = handle.proto?.transport.peer else { return fail(.invalid, "twine_connection_peer: closed") }
    let text = Array(peer.host.utf8CString)
    guard text.count <= size else {
      return fail(.invalid, "twine_connection_peer: host_size \(size) is too small for \(peer.host)")
    }
    text.withUnsafeBufferPointer { host.update(from: $0.baseAddress!, count: text.count) }
    port?.pointee = Int32(peer.port)
    return ok
  }
}

/// `twine_connection_pending_bytes`: bytes queued and not yet sent.
@_cdecl("twine_connection_pending_bytes")
public func twineConnectionPendingBytes(_ connection: OpaquePointer?, _ out: UnsafeMutablePointer<Int>?) -> Int32 {
  withConnection(connection, "twine_connection_pending_bytes") { handle in
    guard let out else { return fail(.invalid, "twine_connection_pending_bytes: out is NULL") }
    out.pointee = handle.proto?.transport.pendingWriteCount ?? 0
    return ok
  }
}

/// `twine_connection_set_data`: keeps the host's pointer with the connection.
@_cdecl("twine_connection_set_data")
public func twineConnectionSetData(_ connection: OpaquePointer?, _ data: UnsafeMutableRawPointer?) -> Int32 {
  withConnection(connection, "twine_connection_set_data") { handle in
    handle.data = data
    return ok
  }
}

/// `twine_connection_get_data`: the host's pointer, or NULL.
@_cdecl("twine_connection_get_data")
public func twineConnectionGetData(_ connection: OpaquePointer?) -> UnsafeMutableRawPointer? {
  guard let handle = ConnectionHandle.table.get(connection), pthread_equal(pthread_self(), handle.thread) != 0 else {
    return nil
  }
  return handle.data
}
