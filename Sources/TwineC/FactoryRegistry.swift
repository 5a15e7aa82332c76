import Twine
import TwineBuiltins

/// The factories a C host can ask for by name (`twine_factory_new("echo", ...)`).
///
/// Built in, from `TwineBuiltins`: `"echo"` (the tutorial's counting Echo, `CountingFactory`;
/// parameter `max_connections`, default 100) and `"hello"` (`HelloHD`: greets and closes).
/// Swift code linked into the host adds its own, typically from a `@_cdecl` setup function
/// the host calls first:
///
/// ```swift
/// @_cdecl("myproto_register")
/// public func register() {
///   FactoryRegistry.register("limited-echo") { parameters throws(FactoryParameters.Invalid) in
///     let limit = try parameters.integer("limit", default: 10, in: 0...1000)
///     return Factory { _ in CountingEcho(maxConnections: limit) }
///   }
/// }
/// ```
public enum FactoryRegistry {
  /// Makes a factory from the host's parameters; throws for values it cannot use.
  public typealias Maker = @Sendable (inout FactoryParameters) throws(FactoryParameters.Invalid) -> Factory

  private static let makers = LockedValue<[String: Maker]>([
    "echo": { parameters throws(FactoryParameters.Invalid) in
      CountingFactory(maxConnections: try parameters.integer("max_connections", default: 100, in: 0...Int(Int32.max)))
    },
    "hello": { _ in Factory(HelloHD.self) },
  ])

  /// Makes `name` available to C hosts, replacing any factory registered under it. Any thread.
  public static func register(_ name: String, _ make: @escaping Maker) {
    makers.withLock { $0[name] = make }
  }

  /// The names registered, sorted.
  public static var names: [String] { makers.withLock { $0.keys.sorted() } }

  /// Why ``make(_:parameters:)`` failed.
  enum Failure: Error {
    case unknownName(String)
    case invalid(FactoryParameters.Invalid)
  }

  /// A new factory registered as `name`, configured by `parameters` ("key=value,...").
  static func make(_ name: String, parameters text: String) throws(Failure) -> Factory {
    guard let make = makers.withLock({ $0[name] }) else { throw .unknownName(name) }
    do throws(FactoryParameters.Invalid) {
      var parameters = try FactoryParameters(parsing: text)
      let factory = try make(&parameters)
      if let key = parameters.unread.first {
        throw FactoryParameters.Invalid("factory \"\(name)\" has no parameter \(key)")
      }
      return factory
    } catch {
      throw .invalid(error)
    }
  }
}
