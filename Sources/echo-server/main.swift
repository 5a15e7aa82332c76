import TutorialServers  // final class Echo: Protocol { dataReceived → transport.write(data) }
// The tutorial's Echo server, top to bottom. Run: swift run echo-server; test: nc 127.0.0.1 8025
import Twine

let reactor = try Reactor()
let factory = Factory(Echo.self)
try reactor.listenTCP(8025, factory: factory, interface: "127.0.0.1")
try reactor.installSignalHandlers()
print("echo server on 127.0.0.1:8025; Ctrl-C stops it")
reactor.run()
