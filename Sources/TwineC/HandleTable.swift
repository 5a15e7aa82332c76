import Synchronization

/// The handles of one kind given to C and not yet freed. A pointer that is not in
/// the table (never made, already freed, garbage) is refused with `TWINE_EINVAL`
/// instead of being dereferenced. Each live handle holds one retain of its object.
final class HandleTable<Object: AnyObject & Sendable>: Sendable {
  private let live = Mutex<Set<UInt>>([])

  /// Retains `object` and returns the pointer C gets for it.
  func add(_ object: Object) -> OpaquePointer {
    let pointer = Unmanaged.passRetained(object).toOpaque()
    live.withLock { _ = $0.insert(UInt(bitPattern: pointer)) }
    return OpaquePointer(pointer)
  }

  /// The object behind `pointer`, if it is a live handle.
  func get(_ pointer: OpaquePointer?) -> Object? {
    guard let pointer else { return nil }
    let raw = UnsafeMutableRawPointer(pointer)
    return live.withLock { live -> Object? in
      // Taken under the lock: a concurrent remove cannot release it in between.
      live.contains(UInt(bitPattern: raw)) ? Unmanaged<Object>.fromOpaque(raw).takeUnretainedValue() : nil
    }
  }

  /// Removes `pointer` and hands back the object with the handle's retain (nil if not live).
  func remove(_ pointer: OpaquePointer?) -> Object? {
    guard let pointer else { return nil }
    let raw = UnsafeMutableRawPointer(pointer)
    return live.withLock { live -> Object? in
      live.remove(UInt(bitPattern: raw)) != nil ? Unmanaged<Object>.fromOpaque(raw).takeRetainedValue() : nil
    }
  }

  /// Runs `body` with the object behind `pointer` while holding the table's lock, so a
  /// concurrent remove waits and the last release never happens on this thread; nil if not live.
  func withLive<Result>(_ pointer: OpaquePointer?, _ body: (Object) -> Result) -> Result? {
    guard let pointer else { return nil }
    let raw = UnsafeMutableRawPointer(pointer)
    return live.withLock { live -> Result? in
      guard live.contains(UInt(bitPattern: raw)) else { return nil }
      return body(Unmanaged<Object>.fromOpaque(raw).takeUnretainedValue())
    }
  }
}
