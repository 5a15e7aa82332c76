import CLibevent
import Glibc

// STAND-IN until branch i16b lands: i16b owns this file and its real
// `adoptListeningSocket`; a merge of i16b replaces this file whole (take theirs).
extension Reactor {
  /// Accepts connections on `fd`, a stream socket already bound and listening, serving each
  /// with a protocol from `factory` (stand-in: plain TCP and UNIX-domain sockets only).
  @discardableResult
  public func adoptListeningSocket(_ fd: Int32, factory: Factory, tls: TLSOptions? = nil) throws(TwineError)
    -> ListeningPort
  {
    try admit("adoptListeningSocket")
    guard tls == nil else { throw .tls("adoptListeningSocket: TLS comes with branch i16b") }
    let address: SocketAddress
    do throws(SocketError) {
      address = try Syscall.localAddress(fd)
      try Syscall.setNonBlocking(fd)
    } catch {
      throw .cannotAdopt(fd: fd, cause: error)
    }
    let options = UInt32(LEV_OPT_CLOSE_ON_FREE | LEV_OPT_DISABLED)
    guard let listener = evconnlistener_new(base, nil, nil, options, 0, fd) else {
      throw .cannotAdopt(fd: fd, cause: .from(code: ENOMEM))
    }
    return ListeningPort(
      reactor: self, listener: listener, address: address, factory: factory, socketFile: nil, tls: nil)
  }
}
