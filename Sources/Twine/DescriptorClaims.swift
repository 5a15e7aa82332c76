/// The socket descriptors Twine's connections own, process-wide: adopting a descriptor
/// that is already claimed is refused (`EBUSY`) instead of giving one fd two owners
/// that would both close it (the second close hitting whatever reused the number).
///
/// Reactors on a host's base (and any reactor that adopted a socket) claim every
/// connection's fd while it is listed; a reactor that only listens and connects on its
/// own base pays nothing. Claims are counted, not flags: a connection closes its fd a
/// moment before it leaves the list, so on another thread a new connection may already
/// hold the same number; its claim must survive the old one's release.
enum DescriptorClaims {
  private static let claims = LockedValue<[Int32: Int]>([:])

  /// Claims `fd` for an adoption; false (and nothing changed) when Twine owns it already.
  static func claimIfFree(_ fd: Int32) -> Bool {
    claims.withLock { claims in
      guard claims[fd] == nil else { return false }
      claims[fd] = 1
      return true
    }
  }

  /// One more claim on `fd` (a listed connection).
  static func add(_ fd: Int32) {
    claims.withLock { $0[fd, default: 0] += 1 }
  }

  /// Drops one claim on `fd`.
  static func release(_ fd: Int32) {
    claims.withLock { claims in
      guard let count = claims[fd] else { return }
      claims[fd] = count > 1 ? count - 1 : nil
    }
  }

  /// True when `fd` is claimed.
  static func isClaimed(_ fd: Int32) -> Bool {
    claims.withLock { $0[fd] != nil }
  }
}
