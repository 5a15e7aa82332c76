import Glibc
import Testing

@testable import Twine
@testable import TwineAsync

/// Back-pressure both ways, against a real peer on a thread of its own.
@Suite(.serialized) struct BackPressureTests {
  /// Waits until `value` stops changing for `quiet` (the peer or writer is stuck), then returns it.
  static func settled(_ reactor: AsyncReactor, _ value: @Sendable () -> Int, quiet: Duration = .milliseconds(500))
    async throws -> Int
  {
    var last = -1
    var stableSince = ContinuousClock.now
    while true {
      let now = value()
      if now != last {
        last = now
        stableSince = .now
      } else if ContinuousClock.now - stableSince >= quiet, now > 0 {
        return now
      }
      try await reactor.sleep(for: .milliseconds(20))
    }
  }

  /// The consumer stops iterating while the peer sends 1 GiB: the server stops reading, the
  /// peer stalls, RSS stays within 64 MiB of where it was; once the consumer goes on, all of it arrives.
  @Test func slowConsumerStopsTheReads() async throws {
    let total = 1 << 30
    let (stalledAt, received, growth, buffered) = try await reacting(timeout: 300) { reactor in
      let listener = try await reactor.listen(tcp: 0, interface: "127.0.0.1")
      let baseline = residentBytes()
      let progress = Shared(0)
      let port = listener.address.port
      onThread {
        let peer = BlockingPeer(port: port)
        _ = peer.send(count: total, progress: progress)
        peer.close()
      }
      var iterator = listener.makeAsyncIterator()
      let connection = try #require(try await iterator.next())
      // The consumer takes nothing: the peer must stall once the server stops reading.
      let stalledAt = try await Self.settled(reactor, { progress.value })
      let bufferedThen = connection.buffered
      var peak = residentBytes() - baseline
      var received = 0
      var chunks = 0
      for try await chunk in connection.inbound {
        received += chunk.count
        chunks += 1
        if chunks % 512 == 0 { peak = max(peak, residentBytes() - baseline) }
      }
      peak = max(peak, residentBytes() - baseline)
      listener.close()
      return (stalledAt, received, peak, bufferedThen)
    }
    #expect(stalledAt < 64 << 20, "the peer sent \(stalledAt) bytes to a consumer that took none")
    #expect(buffered <= WriteBufferLimits.default.highWater + (128 << 10), "\(buffered) bytes waited for the consumer")
    #expect(received == total)
    // RSS is the whole test process's (other suites run meanwhile): a loose bound here; the
    // CLI test measures a server process of its own against the 64 MiB target.
    #expect(growth < 256 << 20, "RSS grew by \(growth) bytes")
  }

  /// A writer to a peer that never reads suspends with the queue near its high mark (the
  /// connection is not aborted), and finishes once the peer reads.
  @Test func writerSuspendsUntilThePeerReads() async throws {
    let piece = [UInt8](repeating: 0x62, count: 64 << 10)
    let pieces = 1024  // 64 MiB: the hard limit, were nothing to stop the writer
    let (suspendedAt, queuedThen, drained, limits) = try await reacting(timeout: 300) { reactor in
      let listener = try await reactor.listen(tcp: 0, interface: "127.0.0.1")
      let port = listener.address.port
      let peer = Shared<BlockingPeer?>(nil)
      onThread { peer.value = BlockingPeer(port: port) }
      var iterator = listener.makeAsyncIterator()
      let connection = try #require(try await iterator.next())
      let written = Shared(0)
      async let writer: Void = {
        for _ in 0..<pieces {
          try await connection.outbound.write(piece)
          written.update { $0 += 1 }
        }
        connection.close()
      }()
      let suspendedAt = try await Self.settled(reactor, { written.value })
      let queuedThen = connection.queued
      let drained = Shared(0)
      let client = try #require(peer.value)
      onThread {
        drained.value = client.drain()
        client.close()
      }
      try await writer
      #expect(await connection.closeReason == .closedByUs)
      while drained.value == 0 { try await reactor.sleep(for: .milliseconds(10)) }
      listener.close()
      return (suspendedAt, queuedThen, drained.value, WriteBufferLimits.default)
    }
    #expect(suspendedAt < pieces, "the writer never waited")
    #expect(queuedThen <= limits.highWater + piece.count, "queued \(queuedThen) bytes while suspended")
    #expect(queuedThen > limits.lowWater, "suspended with the queue drained")
    #expect(drained == pieces * piece.count)
  }
}
