/// What a transport must do after a ``StreamLifecycle`` event, in the order the fields
/// are listed: a transport runs each one that is set, top to bottom.
///
/// A plain value with no allocation: the hot path asks for one per write.
public struct StreamActions: Sendable, Hashable {
  /// Watch the output queue drain to ``WriteBufferLimits/lowWater`` (`true`), or stop
  /// watching (`false`); nil: no change.
  public var watchLowWater: Bool?
  /// Stop reading from the peer (remove the read interest).
  public var stopReading = false
  /// Pause the registered ``PushProducer``.
  public var pauseProducer = false
  /// Resume the registered ``PushProducer``.
  public var resumeProducer = false
  /// Start reading from the peer again (bytes read before a pause come first).
  public var startReading = false
  /// Tell a ``HalfCloseable`` protocol the peer will send nothing more.
  public var readConnectionLost = false
  /// The peer ended its side while output is still queued: keep flushing it.
  public var flushAfterPeerEOF = false
  /// Shut our write side now (`shutdown(SHUT_WR)`): nothing is queued any more.
  public var shutWrite = false
  /// Queued output passed ``WriteBufferLimits/hardLimit`` (the close follows in ``finishClose``).
  public var overflowed = false
  /// Free everything and call `connectionLost` with this reason: the one close. Last, always.
  public var finishClose: CloseReason?

  /// Nothing to do.
  public init() {}

  /// True when no field is set (checked field by field: the hot path asks this per callback).
  public var isEmpty: Bool {
    watchLowWater == nil && !stopReading && !pauseProducer && !resumeProducer && !startReading
      && !readConnectionLost && !flushAfterPeerEOF && !shutWrite && !overflowed && finishClose == nil
  }
}
