import Glibc
import Testing
import TutorialServers
import TwineAsync

// The README's "Async API" examples, word for word inside these functions (only the port is
// a parameter here), so that they compile; the tests below run them against each other.

enum ReadmeExamples {
  static func server(port: Int = 8025) throws {
    // The server: each connection in a child task (structured concurrency).
    try Reactor().react { reactor in
      try await withThrowingDiscardingTaskGroup { group in
        for try await connection in try await reactor.listen(tcp: port) {
          group.addTask {
            for try await chunk in connection.inbound {  // [UInt8] chunks, storage reused
              try await connection.outbound.write(chunk)  // waits while the queue is above its high mark
            }
            connection.close()  // flushes, then closes
          }
        }
      }
    }
  }

  static func client(port: Int = 8025) throws -> String {
    // A client.
    let reply = try Reactor().react { reactor in
      let connection = try await reactor.connect(host: "127.0.0.1", port: port)
      try await connection.outbound.write("hello\r\n")
      connection.outbound.finish()  // half-close: the server sees end of stream
      var reply: [UInt8] = []
      for try await chunk in connection.inbound { reply += chunk }
      return String(decoding: reply, as: UTF8.self)
    }
    return reply
  }

  static func firstLine(port: Int = 8025) throws -> String {
    let banner = try Reactor().react { reactor in
      let line = Deferred<String>()
      try await reactor.withReactor { loop in  // callback API, on the loop thread
        let factory = ClientFactory { _ -> FirstLine? in
          let reader = FirstLine()
          reader.line = line
          return reader
        }
        _ = loop.connectTCP("127.0.0.1", port, factory: factory)
      }
      return try await line.value
    }
    return banner
  }

  /// From a callback: start async work on the reactor; `then` runs back on the loop thread.
  final class Greeter: Protocol {
    override func connectionMade() {
      startTask {
        try await lookUpGreeting()  // any async work
      } then: { result in
        self.transport.write((try? result.get()) ?? "hello\r\n")
        self.transport.loseConnection()
      }
    }
  }

  /// From async code: wait for a callback-style event (Twisted's Deferred, awaited).
  final class FirstLine: Protocol {
    var line = Deferred<String>()
    override func dataReceived(_ data: RawSpan) { line.callback(data.utf8String) }
  }
}

/// The README's stand-in for real async work.
func lookUpGreeting() async throws -> String {
  try await Task.sleep(for: .milliseconds(1))
  return "greetings from a task\r\n"
}

@Suite(.serialized) struct ReadmeExampleTests {
  /// The README's client against an async echo, and the README's Deferred client against its
  /// Greeter (callbacks + startTask), both served by one reactor on a thread of its own that
  /// the test stops at the end. (The README's server runs forever on port 8025: compiled only.)
  @Test func examplesRunAgainstServers() throws {
    let ports = Shared<(echo: Int, greeter: Int)>((0, 0))
    let handle = Shared<AsyncReactor?>(nil)
    let finished = Shared(false)
    onThread {
      let reactor = try! Reactor()
      let greeter = try! reactor.listenTCP(0, factory: Factory(ReadmeExamples.Greeter.self), interface: "127.0.0.1")
      let echo = try! reactor.listen(tcp: 0, interface: "127.0.0.1")
      Task(executorPreference: reactor.executor) { try? await serveAsyncEcho(echo) }
      ports.value = (echo.address.port, greeter.address.port)
      handle.value = reactor.async
      reactor.run()
      finished.value = true
    }
    while handle.value == nil { usleep(1000) }
    #expect(try ReadmeExamples.client(port: ports.value.echo) == "hello\r\n")
    #expect(try ReadmeExamples.firstLine(port: ports.value.greeter) == "greetings from a task\r\n")
    let server = try #require(handle.value)
    server.executor.later { server.executor.reactor?.stop() }
    while !finished.value { usleep(1000) }
  }
}
