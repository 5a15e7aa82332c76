import Twine

/// The handles of one kind given to C and not yet freed.
///
/// A handle is not an address but a number: its kind (one byte, so a `twine_factory *`
/// passed as a `twine_reactor *` is refused), a generation (never reused within a table,
/// for 2^32 handles) and a slot index. A stale handle keeps its generation while the slot
/// moves on, so it is refused with `TWINE_EINVAL` forever, even after the slot holds a new
/// object: a freed handle cannot come back to life as another object (the same address
/// handed out again by malloc could). Nothing a host passes in is ever dereferenced.
/// Each live handle holds one strong reference to its object.
final class HandleTable<Object: AnyObject & Sendable>: Sendable {
  /// What C code sees in each handle's top byte.
  enum Kind: UInt64 {
    case reactor = 0x71, factory = 0x72, listener = 0x73, connection = 0x74
  }

  private struct Slot {
    var object: Object?
    var generation: UInt64
  }

  private struct State {
    var slots: [Slot] = []
    /// Indices of empty slots, reused last-freed first.
    var free: [Int] = []
    var nextGeneration: UInt64 = 1
  }

  private static var indexBits: UInt64 { 24 }
  private static var generationBits: UInt64 { 32 }
  private let state = LockedValue(State())
  private let kind: Kind

  init(_ kind: Kind) { self.kind = kind }

  /// Stores `object` and returns the handle C gets for it; nil when 2^24 handles are live.
  func add(_ object: Object) -> OpaquePointer? {
    state.withLock { state -> OpaquePointer? in
      let generation = state.nextGeneration
      state.nextGeneration = generation % ((1 << Self.generationBits) - 1) + 1  // 1...2^32-1, never 0
      let index: Int
      if let reused = state.free.popLast() {
        index = reused
        state.slots[index] = Slot(object: object, generation: generation)
      } else {
        guard state.slots.count < 1 << Self.indexBits else { return nil }
        index = state.slots.count
        state.slots.append(Slot(object: object, generation: generation))
      }
      return pointer(index, generation)
    }
  }

  /// The object behind `handle`, if it is a live handle of this table.
  func get(_ handle: OpaquePointer?) -> Object? {
    withLive(handle) { $0 }
  }

  /// Removes `handle` and hands back its object (nil if not live). The handle is dead from now on.
  func remove(_ handle: OpaquePointer?) -> Object? {
    guard let (index, generation) = decode(handle) else { return nil }
    return state.withLock { state -> Object? in
      guard index < state.slots.count, state.slots[index].generation == generation,
        let object = state.slots[index].object
      else { return nil }
      state.slots[index].object = nil
      state.free.append(index)
      return object
    }
  }

  /// Runs `body` with the object behind `handle` while holding the table's lock, so a
  /// concurrent remove waits until `body` returns; nil if not live.
  func withLive<Result>(_ handle: OpaquePointer?, _ body: (Object) -> Result) -> Result? {
    guard let (index, generation) = decode(handle) else { return nil }
    return state.withLock { state -> Result? in
      guard index < state.slots.count, state.slots[index].generation == generation,
        let object = state.slots[index].object
      else { return nil }
      return body(object)
    }
  }

  /// Every live handle with its object (for a reactor's destroy to find its listeners).
  var entries: [(OpaquePointer, Object)] {
    state.withLock { state in
      state.slots.indices.compactMap { index in
        state.slots[index].object.map { (pointer(index, state.slots[index].generation), $0) }
      }
    }
  }

  private func pointer(_ index: Int, _ generation: UInt64) -> OpaquePointer {
    OpaquePointer(bitPattern: UInt(kind.rawValue << 56 | generation << Self.indexBits | UInt64(index)))!
  }

  /// The slot index and generation of `handle`, or nil when it is not one of this table's kind.
  private func decode(_ handle: OpaquePointer?) -> (Int, UInt64)? {
    guard let handle else { return nil }
    let value = UInt64(UInt(bitPattern: handle))
    guard value >> 56 == kind.rawValue else { return nil }
    let generation = (value >> Self.indexBits) & ((1 << Self.generationBits) - 1)
    return (Int(value & ((1 << Self.indexBits) - 1)), generation)
  }
}
