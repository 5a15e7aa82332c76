import Twine

extension AsyncConnection {
  /// The bytes a connection receives, as an `AsyncSequence` of chunks (one chunk: what
  /// arrived since the consumer last asked, so chunk boundaries are not message boundaries).
  ///
  /// Each chunk is an owned `[UInt8]`; its storage is reused for a later chunk once the
  /// consumer has let go of it, so a consumer that keeps no chunk past its loop body makes
  /// no allocation per chunk. The sequence ends when the peer closes cleanly (or half-closes)
  /// and throws the `CloseReason` of any other end; cancelling the iterating task aborts
  /// the connection and throws `CloseReason.aborted`.
  public struct Inbound: AsyncSequence, Sendable {
    /// A chunk of received bytes.
    public typealias Element = [UInt8]
    /// Why the connection ended, when it did not end cleanly.
    public typealias Failure = any Error

    let connection: AsyncConnection

    /// Makes the iterator; make one per connection, used by one task at a time.
    public func makeAsyncIterator() -> Iterator { Iterator(connection: connection) }

    /// Hands out the chunks.
    public struct Iterator: AsyncIteratorProtocol {
      let connection: AsyncConnection

      /// The next chunk, nil at a clean end of stream; throws the close reason otherwise.
      public mutating func next() async throws -> [UInt8]? {
        try await connection.nextChunk()
      }
    }
  }

  /// The writing half of a connection.
  public struct Outbound: Sendable {
    let connection: AsyncConnection

    /// Queues `bytes` (sent at once when the kernel takes them; copied at most once). Waits
    /// first while the queue is above its high mark, until it drains to its low mark. Throws
    /// the close reason on a closed connection (`CloseReason.closedByUs` after ``finish()``).
    public func write(_ bytes: [UInt8]) async throws {
      try await connection.write(bytes)
    }

    /// Queues the UTF-8 bytes of `string`, as ``write(_:)-([UInt8])`` does.
    public func write(_ string: String) async throws {
      try await connection.write(Array(string.utf8))
    }

    /// Sends what is queued, then shuts the write side (the peer sees end of stream) while
    /// `inbound` goes on (TCP and UNIX; over TLS the connection closes). Later writes throw.
    public func finish() {
      connection.finish()
    }
  }
}
