import CLibevent
import Foundation
import Glibc
import LoopbackTestSupport

@testable import Twine

/// A fresh folder under /tmp for socket files (short enough for `sun_path`), removed on deinit.
final class SocketFolder {
  let path: String

  init() throws {
    var template = Array("/tmp/twine-unix-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
      throw SocketError(code: errno, message: "mkdtemp failed")
    }
    path = String(cString: made)
  }

  deinit { try? FileManager.default.removeItem(atPath: path) }

  /// A path inside the folder.
  func file(_ name: String) -> String { path + "/" + name }
}

/// `lstat` of `path`, or nil when nothing is there.
func fileStatus(_ path: String) -> stat? {
  var info = stat()
  return lstat(path, &info) == 0 ? info : nil
}

/// True when `path` is a UNIX-domain socket file.
func isSocketFile(_ path: String) -> Bool {
  guard let info = fileStatus(path) else { return false }
  return info.st_mode & S_IFMT == S_IFSOCK
}

/// A plain UNIX-domain stream socket of this process bound to `path` (listening or not),
/// the way another program or a crashed server leaves one.
final class PlainUNIXSocket {
  private(set) var fd: Int32

  init(path: String, listen: Bool) throws {
    fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard bound == 0, !listen || Glibc.listen(fd, 8) == 0 else {
      let error = SocketError(code: errno, message: String(cString: strerror(errno)))
      close()
      throw error
    }
  }

  deinit { close() }

  /// Closes the socket; its file stays behind, stale.
  func close() {
    if fd >= 0 {
      Glibc.close(fd)
      fd = -1
    }
  }
}

/// A `Protocol` that reports its transport's peer address and credentials to `onMade`.
final class CredentialRecorder: Protocol {
  var onMade: (_ peer: SocketAddress, _ credentials: PeerCredentials?) -> Void = { _, _ in }

  override func connectionMade() {
    onMade(transport.peer, transport.peerCredentials)
  }
}
