import Twine
import TwineC
import TwineProtocols

/// The team's protocol: answers each line ("\n"-terminated) with `<greeting>, <line>!`.
final class Greeter: LineReceiver {
  var greeting = "hello"

  override func connectionMade() { delimiter = [10] }

  override func lineReceived(_ line: RawSpan) {
    sendLine("\(greeting), \(line.utf8String)!")
  }
}

/// `greeter_register` (greeter.h): makes "greeter" available to `twine_factory_new`, with
/// the parameter `greeting` (default "hello"). The host calls it once, before it asks for
/// the factory; calling it again is harmless. Any thread.
@_cdecl("greeter_register")
public func greeterRegister() -> Int32 {
  FactoryRegistry.register("greeter") { parameters throws(FactoryParameters.Invalid) in
    let greeting = parameters.string("greeting", default: "hello")
    return Factory { _ in
      let greeter = Greeter()
      greeter.greeting = greeting
      return greeter
    }
  }
  return 0
}
