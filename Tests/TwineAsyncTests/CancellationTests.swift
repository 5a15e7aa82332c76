import Glibc
import Testing

@testable import Twine
@testable import TwineAsync

/// Cancelling the task that waits on a connection aborts it, once, with `.aborted`.
@Suite(.serialized) struct CancellationTests {
  @Test func cancelMidReadAbortsOnce() async throws {
    let (thrown, reason, clientReason, counters) = try await reacting { reactor in
      let listener = try await reactor.listen(tcp: 0, interface: "127.0.0.1")
      let client = try await reactor.connect(host: "127.0.0.1", port: listener.address.port)
      var iterator = listener.makeAsyncIterator()
      let connection = try #require(try await iterator.next())
      let firstChunk = Deferred<Void>()
      let handler = Task(executorPreference: reactor.executor) { () -> (any Error)? in
        do {
          for try await _ in connection.inbound { firstChunk.callback(()) }
          return nil
        } catch {
          return error
        }
      }
      try await client.outbound.write("x")
      try await firstChunk.value
      handler.cancel()  // the handler waits in inbound for more
      let thrown = await handler.value
      let reason = await connection.closeReason
      let clientReason: (any Error)?
      do {
        _ = try await readAll(client)
        clientReason = nil
      } catch {
        clientReason = error
      }
      listener.close()
      return (thrown as? CloseReason, reason, clientReason as? CloseReason, listener.counters)
    }
    #expect(thrown == .aborted)
    #expect(reason == .aborted)
    #expect(clientReason == nil || clientReason == .reset, "the peer sees the end")
    #expect(counters.accepted == 1 && counters.live == 0)
  }

  @Test func cancelMidWriteAbortsOnce() async throws {
    let piece = [UInt8](repeating: 0x63, count: 64 << 10)
    let (thrown, reason, counters, writes) = try await reacting { reactor in
      let listener = try await reactor.listen(tcp: 0, interface: "127.0.0.1")
      let port = listener.address.port
      let peer = Shared<BlockingPeer?>(nil)
      onThread { peer.value = BlockingPeer(port: port) }  // never reads
      var iterator = listener.makeAsyncIterator()
      let connection = try #require(try await iterator.next())
      let written = Shared(0)
      let writer = Task(executorPreference: reactor.executor) { () -> (any Error)? in
        do {
          while true {
            try await connection.outbound.write(piece)
            written.update { $0 += 1 }
          }
        } catch {
          return error
        }
      }
      _ = try await BackPressureTests.settled(reactor, { written.value })  // suspended in write
      writer.cancel()
      let thrown = await writer.value
      let reason = await connection.closeReason
      peer.value?.close()
      listener.close()
      return (thrown as? CloseReason, reason, listener.counters, written.value)
    }
    #expect(writes > 0)
    #expect(thrown == .aborted)
    #expect(reason == .aborted)
    #expect(counters.accepted == 1 && counters.live == 0)
  }

  /// Cancelling a task that waits in connect stops the attempt: it throws `.aborted`.
  @Test func cancelledConnectStopsTheAttempt() async throws {
    let thrown = try await reacting { reactor in
      // A nameserver that never answers (a bound UDP socket nobody reads): the lookup waits.
      let silent = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
      defer { close(silent) }
      var address = sockaddr_in()
      address.sin_family = sa_family_t(AF_INET)
      address.sin_addr.s_addr = inet_addr("127.0.0.1")
      var length = socklen_t(MemoryLayout<sockaddr_in>.size)
      _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          bind(silent, $0, length)
          return getsockname(silent, $0, &length)
        }
      }
      let port = Int(UInt16(bigEndian: address.sin_port))
      try reactor.executor.reactor!.useNameserver("127.0.0.1:\(port)")
      let attempt = Task(executorPreference: reactor.executor) { () -> (any Error)? in
        do {
          _ = try await reactor.connect(host: "never.example", port: 9, timeout: 30)
          return nil
        } catch {
          return error
        }
      }
      try await reactor.sleep(for: .milliseconds(50))
      attempt.cancel()
      return await attempt.value as? CloseReason
    }
    #expect(thrown == .aborted)
  }
}
