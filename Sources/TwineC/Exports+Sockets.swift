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
