import TwineAsync
import TwineBuiltins

/// The tutorial's counting Echo written with the async API: serves every connection
/// `listener` accepts in a child task that echoes each chunk back; a connection that takes
/// the live count past `maxConnections` is told `CountingEcho.refusal` and closed (and
/// counted as refused), as the callback `CountingEcho` does. Returns when the listener
/// ends (its `close()`, or the reactor's shutdown) and every connection has.
public func serveAsyncEcho(_ listener: AsyncListener, maxConnections: Int = 100) async throws {
  try await withThrowingDiscardingTaskGroup { group in
    for try await connection in listener {
      if listener.counters.live > maxConnections {
        listener.counters.noteRefused()
        try? await connection.outbound.write(CountingEcho.refusal)
        connection.close()
        continue
      }
      group.addTask {
        // Closes when the peer has finished (aborts if reading or writing threw: the
        // connection is already gone then, for that reason).
        try? await connection.executeThenClose { inbound, outbound in
          for try await chunk in inbound {
            try await outbound.write(chunk)
          }
        }
      }
    }
  }
}
