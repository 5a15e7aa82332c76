import Glibc
import Testing
import TutorialServers
import TwineAsync

@testable import Twine

/// The async echo over real loopback sockets: sizes, TCP/UNIX/TLS, the counting limit, churn.
@Suite(.serialized) struct AsyncEchoTests {
  /// Sends `payload` and reads the same number of bytes back, writing and reading at once.
  static func roundTrip(_ connection: AsyncConnection, _ payload: [UInt8]) async throws -> [UInt8] {
    try await withThrowingTaskGroup(of: [UInt8].self) { group in
      group.addTask {
        try await connection.outbound.write(payload)
        return []
      }
      group.addTask { try await read(connection, count: payload.count) }
      var echoed: [UInt8] = []
      for try await part in group { echoed += part }
      return echoed
    }
  }

  @Test(arguments: [1, 64 << 10, 8 << 20])
  func echoesOverTCP(size: Int) async throws {
    let payload = pattern(size, seed: 3)
    let (echoed, counters) = try await reacting { reactor in
      let listener = try await reactor.listen(tcp: 0, interface: "127.0.0.1")
      async let served: Void = serveAsyncEcho(listener)
      let client = try await reactor.connect(host: "127.0.0.1", port: listener.address.port)
      let echoed = try await Self.roundTrip(client, payload)
      client.close()
      #expect(await client.closeReason == .closedByUs)
      listener.close()
      try await served
      return (echoed, listener.counters)
    }
    #expect(echoed == payload)
    #expect(counters.accepted == 1)
    #expect(counters.live == 0)
    #expect(counters.bytesIn == size && counters.bytesOut == size)
  }

  @Test func echoesOverUNIX() async throws {
    let path = "/tmp/twine-async-\(getpid()).sock"
    let payload = pattern(100_000, seed: 5)
    let echoed = try await reacting { reactor in
      let listener = try await reactor.listen(unix: path)
      async let served: Void = serveAsyncEcho(listener)
      let client = try await reactor.connect(unix: path)
      let echoed = try await Self.roundTrip(client, payload)
      client.close()
      listener.close()
      try await served
      return echoed
    }
    #expect(echoed == payload)
  }

  @Test func echoesOverTLS() async throws {
    let payload = pattern(300_000, seed: 7)
    let (echoed, reason) = try await reacting { reactor in
      let listener = try await reactor.listen(tls: 0, options: AsyncCertificates.server(), interface: "127.0.0.1")
      async let served: Void = serveAsyncEcho(listener)
      let client = try await reactor.connect(
        host: "localhost", port: listener.address.port, tls: AsyncCertificates.trustingClient())
      let echoed = try await Self.roundTrip(client, payload)
      client.close()
      let reason = await client.closeReason
      listener.close()
      try await served
      return (echoed, reason)
    }
    #expect(echoed == payload)
    #expect(reason == .closedByUs)
  }

  @Test func failedConnectThrowsTheReason() async throws {
    let error = try await reacting { reactor in
      // A port nobody listens on: bind one, note it, close it.
      let listener = try await reactor.listen(tcp: 0, interface: "127.0.0.1")
      let port = listener.address.port
      listener.close()
      do {
        _ = try await reactor.connect(host: "127.0.0.1", port: port)
        return nil as CloseReason?
      } catch {
        return error as? CloseReason
      }
    }
    #expect(error == .connectionRefused)
  }

  /// 100 connections echo; the 101st hears the exact refusal text and is closed.
  @Test func countingLimitOverTheAsyncPath() async throws {
    let (refusal, counters, live) = try await reacting { reactor in
      let listener = try await reactor.listen(tcp: 0, interface: "127.0.0.1")
      async let served: Void = serveAsyncEcho(listener, maxConnections: 100)
      var clients: [AsyncConnection] = []
      for index in 0..<100 {
        let client = try await reactor.connect(host: "127.0.0.1", port: listener.address.port)
        let message = Array("hello \(index)".utf8)
        try await client.outbound.write(message)
        let back = try await read(client, count: message.count)
        #expect(back == message)
        clients.append(client)
      }
      let extra = try await reactor.connect(host: "127.0.0.1", port: listener.address.port)
      let refusal = String(decoding: try await readAll(extra), as: UTF8.self)
      let live = listener.counters.live
      for client in clients { client.close() }
      for client in clients { _ = await client.closeReason }
      listener.close()
      try await served
      return (refusal, listener.counters, live)
    }
    #expect(refusal == "Too many connections, try later")
    #expect(live == 100)
    #expect(counters.refused == 1)
    #expect(counters.accepted == 101)
    #expect(counters.live == 0)
  }

  /// 10,000 connect/echo/close cycles, eight at a time: counters exact, nothing left alive.
  @Test func tenThousandCycles() async throws {
    let cycles = 10_000
    let (counters, echoed, survivors) = try await reacting(timeout: 300) { reactor in
      let listener = try await reactor.listen(tcp: 0, interface: "127.0.0.1")
      async let served: Void = serveAsyncEcho(listener, maxConnections: 100)
      let port = listener.address.port
      let echoed = Shared(0)
      let watched = Shared<[WeakConnection]>([])
      try await withThrowingTaskGroup(of: Void.self) { group in
        for lane in 0..<8 {
          group.addTask {
            for cycle in stride(from: lane, to: cycles, by: 8) {
              let client = try await reactor.connect(host: "127.0.0.1", port: port)
              let message = Array("cycle \(cycle)".utf8)
              try await client.outbound.write(message)
              if try await read(client, count: message.count) == message { echoed.update { $0 += 1 } }
              client.close()
              _ = await client.closeReason
              if cycle % 1000 == 0 { watched.update { $0.append(WeakConnection(client)) } }
            }
          }
        }
        try await group.waitForAll()
      }
      // The server side closes once it reads our FIN: wait for the last ones.
      while listener.counters.live > 0 { try await reactor.sleep(for: .milliseconds(5)) }
      listener.close()
      try await served
      return (listener.counters, echoed.value, watched.value)
    }
    #expect(echoed == cycles)
    #expect(counters.accepted == cycles)
    #expect(counters.live == 0)
    #expect(counters.refused == 0)
    #expect(counters.bytesIn == counters.bytesOut)
    #expect(survivors.count == cycles / 1000)
    #expect(survivors.allSatisfy { $0.connection == nil }, "a connection outlived its cycle")
  }
}

/// Watches a connection without keeping it.
struct WeakConnection: @unchecked Sendable {
  // @unchecked: a weak reference read only after the reactor has shut down.
  weak var connection: AsyncConnection?
  init(_ connection: AsyncConnection) { self.connection = connection }
}
