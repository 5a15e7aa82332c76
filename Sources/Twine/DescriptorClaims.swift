/// The socket descriptors Twine's connections own, process-wide: adopting a descriptor
/// that is already claimed is refused (`EBUSY`) instead of giving one fd two owners
/// that would both close it (the second close hitting whatever reused the number).
///
/// Reactors on a host's base (and any reactor that adopted a socket) claim every
/// connection's fd; a reactor that only listens and connects on its own base pays nothing.
enum DescriptorClaims {
  private static let claimed = PthreadLock<Set<Int32>>([])

  /// Claims `fd`; false when it is claimed already (then nothing changed).
  static func claim(_ fd: Int32) -> Bool {
    claimed.withLock { $0.insert(fd).inserted }
  }

  /// Lets go of `fd` (its owner closed, or is about to close, it).
  static func release(_ fd: Int32) {
    _ = claimed.withLock { $0.remove(fd) }
  }

  /// True when `fd` is claimed.
  static func isClaimed(_ fd: Int32) -> Bool {
    claimed.withLock { $0.contains(fd) }
  }
}
