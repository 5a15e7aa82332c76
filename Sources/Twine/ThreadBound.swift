/// A value that belongs to one reactor of a group, carried by other threads but used only
/// on its reactor's thread (a port or factory the group made there). Using it anywhere
/// else stops the program.
final class ThreadBound<Value>: @unchecked Sendable {
  private let value: Value
  /// The reactor whose thread may use ``value``.
  let owner: ReactorThread

  init(_ value: Value, on owner: ReactorThread) {
    self.value = value
    self.owner = owner
  }

  /// The value; only on the owner's thread.
  func get() -> Value {
    precondition(owner.isCurrent, "a reactor's object used off its thread")
    return value
  }
}
