import CTwineAPI
import Twine

// The C API's factory calls (twine.h): safe from any thread.

/// `twine_factory_new`: a built-in or registered factory, by name.
@_cdecl("twine_factory_new")
public func twineFactoryNew(
  _ name: UnsafePointer<CChar>?, _ parameters: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
  guard let out else { return fail(.invalid, "twine_factory_new: out is NULL") }
  out.pointee = nil
  guard let name else { return fail(.invalid, "twine_factory_new: name is NULL") }
  let factoryName = String(cString: name)
  do {
    let factory = try FactoryRegistry.make(factoryName, parameters: parameters.map { String(cString: $0) } ?? "")
    guard let pointer = FactoryHandle.table.add(FactoryHandle(factory: factory, name: factoryName)) else {
      return fail(.libevent, "twine_factory_new: too many live factories")
    }
    out.pointee = pointer
    return ok
  } catch {
    switch error {
    case .unknownName(let unknown):
      let known = FactoryRegistry.names.map { "\"\($0)\"" }.joined(separator: ", ")
      return fail(.notFound, "twine_factory_new: no factory named \"\(unknown)\" (registered: \(known))")
    case .invalid(let why):
      return fail(.invalid, "twine_factory_new(\"\(factoryName)\"): \(why)")
    }
  }
}

/// `twine_factory_free`: lets go of the handle; listeners keep the factory alive.
@_cdecl("twine_factory_free")
public func twineFactoryFree(_ factory: OpaquePointer?) -> Int32 {
  guard let factory else { return ok }
  guard FactoryHandle.table.remove(factory) != nil else {
    return fail(.invalid, "twine_factory_free: not a live twine_factory (freed already, or never made)")
  }
  return ok
}

/// `twine_factory_counters`: the factory's connection and byte counters.
@_cdecl("twine_factory_counters")
public func twineFactoryCounters(_ factory: OpaquePointer?, _ out: UnsafeMutablePointer<twine_counters>?) -> Int32 {
  guard let out else { return fail(.invalid, "twine_factory_counters: out is NULL") }
  guard let handle = FactoryHandle.table.get(factory) else {
    return fail(
      .invalid,
      "twine_factory_counters: " + (factory == nil ? "factory is NULL" : "not a live twine_factory"))
  }
  out.pointee = twine_counters(handle.factory.counters)
  return ok
}

/// The live factory behind `pointer`, or the failure code of `function`.
func factoryHandle(_ pointer: OpaquePointer?, _ function: String) -> Result<FactoryHandle, FailureCode> {
  guard let handle = FactoryHandle.table.get(pointer) else {
    return .failure(
      FailureCode(
        fail(.invalid, "\(function): " + (pointer == nil ? "factory is NULL" : "not a live twine_factory"))))
  }
  return .success(handle)
}

/// A status code already recorded with its message.
struct FailureCode: Error {
  let code: Int32
  init(_ code: Int32) { self.code = code }
}
