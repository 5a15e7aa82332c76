import CTwineAPI
import Twine

/// The calls `twine_call_from_thread` accepted for one reactor and that have not run yet.
///
/// Every accepted call ends exactly once: it runs on the loop, or, when the reactor is
/// destroyed first, ``cancelAll()`` calls it back as cancelled (libuv's `uv_close` always
/// calls back), so the host can always free its context.
final class PendingCalls: Sendable {
  /// A C function and its context (the host vouches for the context).
  struct Call: @unchecked Sendable {
    enum Function {
      /// `twine_call_from_thread`: runs, or runs as destroy's last act when cancelled.
      case plain(twine_thread_fn)
      /// `twine_call_from_thread_or_cancel`: gets `cancelled` 0 or 1.
      case cancellable(twine_call_fn)
    }
    let function: Function
    let context: UnsafeMutableRawPointer?

    func callAsFunction(cancelled: Bool) {
      switch function {
      case .plain(let fn): fn(context)
      case .cancellable(let fn): fn(context, cancelled ? 1 : 0)
      }
    }
  }

  private struct State {
    var waiting: [UInt64: Call] = [:]
    var nextID: UInt64 = 0
  }
  private let state = LockedValue(State())

  /// Records `call` as accepted; the id is for ``run(_:)``.
  func accept(_ call: Call) -> UInt64 {
    state.withLock { state in
      state.nextID += 1
      state.waiting[state.nextID] = call
      return state.nextID
    }
  }

  /// Forgets a call that was never queued after all.
  func withdraw(_ id: UInt64) {
    _ = state.withLock { $0.waiting.removeValue(forKey: id) }
  }

  /// Runs call `id` on the loop, unless destroy cancelled it already.
  func run(_ id: UInt64) {
    guard let call = state.withLock({ $0.waiting.removeValue(forKey: id) }) else { return }
    call(cancelled: false)
  }

  /// Calls back every call still waiting, as cancelled, in the order they were accepted.
  func cancelAll() {
    let left = state.withLock { state in
      defer { state.waiting = [:] }
      return state.waiting.sorted { $0.key < $1.key }.map(\.value)
    }
    for call in left { call(cancelled: true) }
  }
}
