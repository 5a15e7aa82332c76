import CTwineAPI
import Twine

// The C API's listening and socket adoption (twine.h): on the reactor's thread.

/// `twine_listen`: serves `factory` on `interface`:`port` until the reactor is destroyed.
@_cdecl("twine_listen")
public func twineListen(
  _ reactor: OpaquePointer?, _ factory: OpaquePointer?, _ interface: UnsafePointer<CChar>?, _ port: Int32,
  _ boundPort: UnsafeMutablePointer<Int32>?
) -> Int32 {
  withReactor(reactor, "twine_listen") { handle in
    let factoryHandle: FactoryHandle
    switch TwineC.factoryHandle(factory, "twine_listen") {
    case .success(let found): factoryHandle = found
    case .failure(let failure): return failure.code
    }
    guard (0...65535).contains(port) else { return fail(.invalid, "twine_listen: port \(port) is not in 0...65535") }
    do throws(TwineError) {
      let listening = try handle.reactor.listenTCP(
        Int(port), factory: factoryHandle.factory, interface: interface.map { String(cString: $0) } ?? "")
      boundPort?.pointee = Int32(listening.address.port)
      return ok
    } catch {
      return fail("twine_listen", error)
    }
  }
}

/// `twine_listen_endpoint`: serves `factory` where an endpoint string says, until the reactor is destroyed.
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
      let listening = try handle.reactor.listen(parsed, factory: factoryHandle.factory)
      boundPort?.pointee = Int32(listening.address.port)
      return ok
    } catch {
      return fail("twine_listen_endpoint", error)
    }
  }
}

/// `twine_reactor_stats`: the reactor's ports and connections, summed.
@_cdecl("twine_reactor_stats")
public func twineReactorStats(_ reactor: OpaquePointer?, _ out: UnsafeMutablePointer<twine_stats>?) -> Int32 {
  withReactor(reactor, "twine_reactor_stats") { handle in
    guard let out else { return fail(.invalid, "twine_reactor_stats: out is NULL") }
    let ports = handle.reactor.listeningPorts
    out.pointee = twine_stats(
      listeners: Int64(ports.count), connections: Int64(handle.reactor.connectionCount),
      accepted: Int64(ports.reduce(0) { $0 + $1.stats.accepted }),
      refused: Int64(ports.reduce(0) { $0 + $1.stats.refused }),
      accept_errors: Int64(ports.reduce(0) { $0 + $1.stats.acceptErrors }),
      tls_handshake_failures: Int64(ports.reduce(0) { $0 + $1.failedHandshakes }))
    return ok
  }
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
