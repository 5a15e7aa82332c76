/// How much output a transport queues for a slow reader before it pushes back.
///
/// Past ``highWater`` queued bytes, the transport pauses its registered
/// ``PushProducer``, or, with none registered, stops reading from the peer (so a
/// protocol that writes only in answer to input, like Echo, stops producing too). Once
/// the queue drains to ``lowWater``, it resumes. Past ``hardLimit`` it aborts the
/// connection with ``CloseReason/bufferOverflow``: a writer that ignores the pause
/// cannot grow the process without bound.
public struct WriteBufferLimits: Sendable, Hashable {
  /// Resume at or below this many queued bytes.
  public var lowWater: Int
  /// Pause above this many queued bytes.
  public var highWater: Int
  /// Abort above this many queued bytes.
  public var hardLimit: Int

  /// Makes limits; `lowWater` ≤ `highWater` ≤ `hardLimit` is expected (values are clamped to that order).
  public init(lowWater: Int, highWater: Int, hardLimit: Int) {
    self.lowWater = max(0, lowWater)
    self.highWater = max(self.lowWater, highWater)
    self.hardLimit = max(self.highWater, hardLimit)
  }

  /// 64 KiB / 1 MiB / 64 MiB.
  public static let `default` = WriteBufferLimits(lowWater: 64 << 10, highWater: 1 << 20, hardLimit: 64 << 20)
}
