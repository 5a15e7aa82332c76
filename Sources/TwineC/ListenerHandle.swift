import Twine

/// What a `twine_listener *` handle stands for: one listening port of one reactor.
///
/// Unchecked Sendable: the port is used only on its reactor's thread (every call checks
/// ``reactor``'s thread first); the handle itself only moves between tables.
final class ListenerHandle: @unchecked Sendable {
  let port: ListeningPort
  /// The reactor the port belongs to (its destroy frees this handle too).
  let reactor: ReactorHandle
  let factory: FactoryHandle

  init(port: ListeningPort, reactor: ReactorHandle, factory: FactoryHandle) {
    self.port = port
    self.reactor = reactor
    self.factory = factory
  }

  /// Stops the port (the factory's port count changes under ``FactoryHandle/startStop``).
  func stop() {
    FactoryHandle.startStop.withLock { _ in port.stopListening() }
  }

  /// Every live `twine_listener *`.
  static let table = HandleTable<ListenerHandle>(.listener)

  /// Reactor destroy: stops and frees every listener of `reactor`; their handles are dead from then on.
  static func freeAll(of reactor: ReactorHandle) {
    for (pointer, listener) in table.entries where listener.reactor === reactor {
      _ = table.remove(pointer)
      listener.stop()
    }
  }
}
