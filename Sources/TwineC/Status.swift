import CTwineAPI
import Glibc
import Twine

/// The C API's result codes (`twine_status` in twine.h).
enum Status {
  case ok, invalid, notFound, addressInUse, socket, wrongThread, shutDown, libevent

  var code: Int32 {
    let status: twine_status =
      switch self {
      case .ok: TWINE_OK
      case .invalid: TWINE_EINVAL
      case .notFound: TWINE_ENOTFOUND
      case .addressInUse: TWINE_EADDRINUSE
      case .socket: TWINE_ESOCKET
      case .wrongThread: TWINE_EWRONGTHREAD
      case .shutDown: TWINE_ESHUTDOWN
      case .libevent: TWINE_ELIBEVENT
      }
    return Int32(status.rawValue)
  }

  /// The status for an error the reactor threw.
  init(_ error: TwineError) {
    switch error {
    case .cannotListen(_, _, let cause), .cannotListenOnPath(_, let cause):
      self = cause.code == EADDRINUSE ? .addressInUse : .socket
    case .badAddress, .borrowedBase, .cannotAdoptBufferevent, .badEndpoint, .tls: self = .invalid
    case .cannotAdopt(_, let cause): self = cause.code == EBADF ? .invalid : .socket
    case .libevent: self = .libevent
    case .reactorShutDown: self = .shutDown
    }
  }
}

/// Records `message` as this thread's last error (`twine_last_error()`) and returns `status`'s code.
func fail(_ status: Status, _ message: String) -> Int32 {
  twine_internal_fail(status.code, message)
}

/// Records the error `function` met and returns its status code.
func fail(_ function: String, _ error: TwineError) -> Int32 {
  fail(Status(error), "\(function): \(error)")
}

/// The success code.
let ok = Status.ok.code
