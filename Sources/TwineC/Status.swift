import CTwineAPI
import Glibc
import Twine

/// The C API's result codes (`twine_status` in twine.h).
enum Status {
  case ok, invalid, notFound, addressInUse, socket, wrongThread, shutDown, libevent, busy

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
      case .busy: TWINE_EBUSY
      }
    return Int32(status.rawValue)
  }

  /// The status for an error the reactor threw.
  init(_ error: TwineError) {
    switch error {
    case .cannotListen(_, _, let cause), .cannotListenOnPath(_, let cause):
      self = cause.code == EADDRINUSE ? .addressInUse : .socket
    case .badAddress, .borrowedBase, .cannotAdoptBufferevent, .badEndpoint, .tls: self = .invalid
    case .cannotAdopt(_, let cause): self = cause.code == EBADF ? .invalid : cause.code == EBUSY ? .busy : .socket
    case .libevent: self = .libevent
    case .takeover: self = .socket
    case .reactorShutDown: self = .shutDown
    }
  }
}

/// Records `message` as this thread's last error (`twine_last_error()`, with `errno` for
/// `twine_last_errno()`: 0 when no system call failed) and returns `status`'s code.
func fail(_ status: Status, _ message: String, errno code: Int32 = 0) -> Int32 {
  twine_internal_fail(status.code, code, message)
}

/// Records the error `function` met (with the errno of a failed system call) and returns its status code.
func fail(_ function: String, _ error: TwineError) -> Int32 {
  let code: Int32 =
    switch error {
    case .cannotListen(_, _, let cause), .cannotListenOnPath(_, let cause), .cannotAdopt(_, let cause): cause.code
    default: 0
    }
  return fail(Status(error), "\(function): \(error)", errno: code)
}

/// The success code.
let ok = Status.ok.code
