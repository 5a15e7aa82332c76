import CTwineAPI
import Glibc
import Twine

// The C API's listening and socket adoption (twine.h): on the reactor's thread.

/// `twine_listen`: serves `factory` on `interface`:`port` until the reactor is freed.
@_cdecl("twine_listen")
public func twineListen(
  _ reactor: OpaquePointer?, _ factory: OpaquePointer?, _ interface: UnsafePointer<CChar>?, _ port: Int32,
  _ boundPort: UnsafeMutablePointer<Int32>?
) -> Int32 {
  var listener: OpaquePointer?
  let code = listenTCP(reactor, factory, interface, port, &listener, "twine_listen")
  if code == ok { boundPort?.pointee = Int32(ListenerHandle.table.get(listener)?.port.address.port ?? 0) }
  return code
}

/// `twine_listener_new`: like `twine_listen`, returning the listener's handle.
@_cdecl("twine_listener_new")
public func twineListenerNew(
  _ reactor: OpaquePointer?, _ factory: OpaquePointer?, _ interface: UnsafePointer<CChar>?, _ port: Int32,
  _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
  guard let out else { return fail(.invalid, "twine_listener_new: out is NULL") }
  out.pointee = nil
  return listenTCP(reactor, factory, interface, port, &out.pointee, "twine_listener_new")
}

private func listenTCP(
  _ reactor: OpaquePointer?, _ factory: OpaquePointer?, _ interface: UnsafePointer<CChar>?, _ port: Int32,
  _ out: inout OpaquePointer?, _ function: String
) -> Int32 {
  withReactor(reactor, function) { handle in
    let factoryHandle: FactoryHandle
    switch TwineC.factoryHandle(factory, function) {
    case .success(let found): factoryHandle = found
    case .failure(let failure): return failure.code
    }
    guard (0...65535).contains(port) else { return fail(.invalid, "\(function): port \(port) is not in 0...65535") }
    do throws(TwineError) {
      let listening = try FactoryHandle.startStop.withLock { _ throws(TwineError) in
        try handle.reactor.listenTCP(
          Int(port), factory: factoryHandle.factory, interface: interface.map { String(cString: $0) } ?? "")
      }
      return register(listening, handle, factoryHandle, &out, function)
    } catch {
      return fail(function, error)
    }
  }
}

/// `twine_listen_fd`: serves connections accepted on a socket the host already bound; Twine owns it on success.
@_cdecl("twine_listen_fd")
public func twineListenFD(
  _ reactor: OpaquePointer?, _ factory: OpaquePointer?, _ fd: Int32, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
  guard let out else { return fail(.invalid, "twine_listen_fd: out is NULL") }
  out.pointee = nil
  return withReactor(reactor, "twine_listen_fd") { handle in
    let factoryHandle: FactoryHandle
    switch TwineC.factoryHandle(factory, "twine_listen_fd") {
    case .success(let found): factoryHandle = found
    case .failure(let failure): return failure.code
    }
    do throws(TwineError) {
      let listening = try FactoryHandle.startStop.withLock { _ throws(TwineError) in
        try handle.reactor.adoptListeningSocket(listeningIfBound(fd), factory: factoryHandle.factory)
      }
      return register(listening, handle, factoryHandle, &out.pointee, "twine_listen_fd")
    } catch {
      return fail("twine_listen_fd", error)
    }
  }
}

/// Gives `port` a listener handle (so the reactor's free stops it under the factory lock).
private func register(
  _ port: ListeningPort, _ reactor: ReactorHandle, _ factory: FactoryHandle, _ out: inout OpaquePointer?,
  _ function: String
) -> Int32 {
  let listener = ListenerHandle(port: port, reactor: reactor, factory: factory)
  guard let pointer = ListenerHandle.table.add(listener) else {
    listener.stop()
    return fail(.libevent, "\(function): too many live listeners")
  }
  out = pointer
  reactor.reactor.logger.info(
    "listening", metadata: ["port": "\(port.address)", "factory": "\(factory.name)"])
  return ok
}

/// `twine_adopt_fd`: serves a socket the host accepted or connected; Twine owns it on success.
@_cdecl("twine_adopt_fd")
public func twineAdoptFD(_ reactor: OpaquePointer?, _ factory: OpaquePointer?, _ fd: Int32) -> Int32 {
  withReactor(reactor, "twine_adopt_fd") { handle in
    let factoryHandle: FactoryHandle
    switch TwineC.factoryHandle(factory, "twine_adopt_fd") {
    case .success(let found): factoryHandle = found
    case .failure(let failure): return failure.code
    }
    do throws(TwineError) {
      try handle.reactor.adoptStreamSocket(fd, factory: factoryHandle.factory)
      return ok
    } catch {
      return fail("twine_adopt_fd", error)
    }
  }
}

/// `twine_adopt_bufferevent`: serves a connected bufferevent the host made on the reactor's base; Twine owns it on success.
@_cdecl("twine_adopt_bufferevent")
public func twineAdoptBufferevent(_ reactor: OpaquePointer?, _ factory: OpaquePointer?, _ bufferevent: OpaquePointer?)
  -> Int32
{
  withReactor(reactor, "twine_adopt_bufferevent") { handle in
    let factoryHandle: FactoryHandle
    switch TwineC.factoryHandle(factory, "twine_adopt_bufferevent") {
    case .success(let found): factoryHandle = found
    case .failure(let failure): return failure.code
    }
    guard let bufferevent else { return fail(.invalid, "twine_adopt_bufferevent: bufferevent is NULL") }
    do throws(TwineError) {
      try handle.reactor.adoptBufferevent(bufferevent, factory: factoryHandle.factory)
      return ok
    } catch {
      return fail("twine_adopt_bufferevent", error)
    }
  }
}

/// `twine_listen_endpoint`: serves `factory` where an endpoint string says, until the reactor is freed.
@_cdecl("twine_listen_endpoint")
public func twineListenEndpoint(
  _ reactor: OpaquePointer?, _ factory: OpaquePointer?, _ endpoint: UnsafePointer<CChar>?,
  _ boundPort: UnsafeMutablePointer<Int32>?
) -> Int32 {
  withReactor(reactor, "twine_listen_endpoint") { handle in
    let factoryHandle: FactoryHandle
    switch TwineC.factoryHandle(factory, "twine_listen_endpoint") {
    case .success(let found): factoryHandle = found
    case .failure(let failure): return failure.code
    }
    guard let endpoint else { return fail(.invalid, "twine_listen_endpoint: endpoint is NULL") }
    let parsed: ServerEndpoint
    do throws(EndpointError) {
      parsed = try ServerEndpoint(String(cString: endpoint))
    } catch {
      return fail(.invalid, "twine_listen_endpoint: \(error)")
    }
    do throws(TwineError) {
      let listening = try FactoryHandle.startStop.withLock { _ throws(TwineError) in
        try handle.reactor.listen(parsed, factory: factoryHandle.factory)
      }
      var listener: OpaquePointer?
      let code = register(listening, handle, factoryHandle, &listener, "twine_listen_endpoint")
      if code == ok { boundPort?.pointee = Int32(listening.address.port) }
      return code
    } catch {
      return fail("twine_listen_endpoint", error)
    }
  }
}

/// `fd`, listening: a bound stream socket the host has not called listen(2) on yet is put
/// in the listening state (backlog 511) first. Anything else (an unbound socket, which
/// listen(2) would bind to a random port, or not a stream socket) is left as it is, for
/// `adoptListeningSocket` to refuse with its errno.
private func listeningIfBound(_ fd: Int32) -> Int32 {
  var listening: Int32 = 0
  var length = socklen_t(MemoryLayout<Int32>.size)
  guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0, listening == 0 else { return fd }
  var address = sockaddr_storage()
  var size = socklen_t(MemoryLayout<sockaddr_storage>.size)
  let named = withUnsafeMutablePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &size) == 0 }
  }
  guard named else { return fd }
  let bound: Bool
  switch Int32(address.ss_family) {
  case AF_INET: bound = withUnsafeBytes(of: address) { $0.load(as: sockaddr_in.self).sin_port != 0 }
  case AF_INET6: bound = withUnsafeBytes(of: address) { $0.load(as: sockaddr_in6.self).sin6_port != 0 }
  case AF_UNIX: bound = Int(size) > MemoryLayout<sa_family_t>.size
  default: bound = false
  }
  if bound { _ = listen(fd, 511) }
  return fd
}
