// The tutorial's HelloHD server, top to bottom. Run: swift run hello-server; test: telnet 127.0.0.1 8025
import Twine

/// Greets each client, then closes once the greeting is sent.
final class HelloHD: Protocol {
  override func connectionMade() {
    transport.write("Hello This is HD's Test protocol\r\n")
    transport.loseConnection()
  }
}

let reactor = try Reactor()
try reactor.listenTCP(8025, factory: Factory(HelloHD.self), interface: "127.0.0.1")
try reactor.installSignalHandlers()
print("hello server on 127.0.0.1:8025; Ctrl-C stops it")
reactor.run()
