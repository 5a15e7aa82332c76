import Glibc
import Testing
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
  /// The README's client against the README's server (on its own thread), then the Greeter
  /// server (callbacks + startTask) read by the README's Deferred client.
  @Test func examplesRunAgainstEachOther() throws {
    let port = Shared(0)
    let greeterPort = Shared(0)
    onThread {
      // A port picked by the kernel: listen on 0 through the callback API, hand the number over.
      let reactor = try! Reactor()
      let made = try! reactor.listenTCP(0, factory: Factory(ReadmeExamples.Greeter.self), interface: "127.0.0.1")
      greeterPort.value = made.address.port
      reactor.run()
    }
    // The README's server wants a fixed port: find a free one first.
    let probe = try Reactor()
    let free = try probe.listenTCP(0, factory: Factory(Protocol.self), interface: "127.0.0.1").address.port
    probe.shutdown()
    port.value = free
    onThread { try? ReadmeExamples.server(port: free) }
    var reply = ""
    for _ in 0..<200 where reply.isEmpty {
      reply = (try? ReadmeExamples.client(port: free)) ?? ""
      if reply.isEmpty { usleep(10_000) }
    }
    #expect(reply == "hello\r\n")
    while greeterPort.value == 0 { usleep(1000) }
    #expect(try ReadmeExamples.firstLine(port: greeterPort.value) == "greetings from a task\r\n")
  }
}
