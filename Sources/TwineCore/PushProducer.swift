/// Something that writes to a transport on its own initiative and can be told to
/// wait (Twisted's `IPushProducer`). Register it with ``Transport/registerProducer(_:)``:
/// the transport pauses it when its queued output passes
/// ``WriteBufferLimits/highWater`` and resumes it once the queue drains to
/// ``WriteBufferLimits/lowWater``.
public protocol PushProducer: AnyObject {
  /// Stop writing until ``resumeProducing()``.
  func pauseProducing()
  /// Writing may go on.
  func resumeProducing()
  /// The connection is gone: stop for good.
  func stopProducing()
}
