import Glibc
import Synchronization

/// An accepted socket on its way from a group's acceptor to another reactor. Whoever
/// takes it owns it; if nobody does (the target reactor shut down and dropped the call
/// carrying it), it is closed when the last reference goes, so no descriptor leaks.
final class HandedOffSocket: Sendable {
  private let fd: Int32
  private let taken = Atomic<Bool>(false)

  init(_ fd: Int32) { self.fd = fd }

  deinit {
    if !taken.load(ordering: .acquiring) { Glibc.close(fd) }
  }

  /// The descriptor, once; nil after the first call.
  func take() -> Int32? {
    taken.exchange(true, ordering: .acquiringAndReleasing) ? nil : fd
  }
}
