import Twine

/// What a `twine_factory *` points to: one factory, made by name.
///
/// Unchecked Sendable: a handle may be freed and its counters read on any thread
/// (the counters are atomics, the factory reference never changes); the factory's
/// own methods run only on the reactor threads of the listeners that use it.
final class FactoryHandle: @unchecked Sendable {
  let factory: Factory
  let name: String

  init(factory: Factory, name: String) {
    self.factory = factory
    self.name = name
  }

  /// Every live `twine_factory *`.
  static let table = HandleTable<FactoryHandle>(.factory)

  /// Held while a listener starts or stops: a factory shared by reactors on several host
  /// threads counts its ports (`Factory.doStart`/`doStop`) one thread at a time.
  static let startStop = LockedValue<Int>(0)
}
