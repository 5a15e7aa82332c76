/// The connection a ``Protocol`` writes to (Twisted's `ITransport`).
///
/// All methods are called on the reactor's thread. After the connection has
/// closed, writes are ignored and the other calls do nothing.
public protocol Transport: AnyObject {
  /// Queues `data` for sending. Copies at most once; `data` may be a view
  /// handed to `dataReceived`.
  func write(_ data: RawSpan)

  /// Stops reading, sends everything queued, then closes; `connectionLost(reason)` follows.
  /// Writes made before the close happens (in the same callback, or while output is
  /// still queued) are sent too. Use `.protocolError("why")` to end a connection whose
  /// peer sent something malformed.
  func loseConnection(reason: CloseReason)

  /// Sends everything queued, then shuts our write side (the peer sees end of stream)
  /// while reading goes on; later writes are dropped. Once the peer has ended its side too,
  /// the connection closes (`connectionLost(.closedByUs)`). See ``HalfCloseable``.
  func loseWriteConnection()

  /// Closes now, discarding queued output; `connectionLost(reason)` follows.
  func abortConnection(reason: CloseReason)

  /// Stops delivering `dataReceived` until ``resumeProducing()``.
  func pauseProducing()

  /// Resumes delivery after ``pauseProducing()``; bytes that arrived meanwhile come first.
  func resumeProducing()

  /// The remote end's address.
  var peer: SocketAddress { get }

  /// The local end's address.
  var host: SocketAddress { get }

  /// The peer process's pid, uid and gid on a UNIX-domain socket; nil elsewhere (the default).
  var peerCredentials: PeerCredentials? { get }

  /// Bytes queued but not yet handed to the kernel.
  var pendingWriteCount: Int { get }

  /// True once `loseConnection` or `abortConnection` was called, or the connection closed
  /// (Twisted's `transport.disconnecting`): a protocol that hands out several messages from
  /// one read stops when this turns true.
  var disconnecting: Bool { get }

  /// When the queue pauses and resumes producers, and when it aborts. Default: ``WriteBufferLimits/default``.
  var writeBufferLimits: WriteBufferLimits { get set }

  /// Makes `producer` the one the transport pauses and resumes as its output queue
  /// fills and drains (replacing any other); `stopProducing()` is called when the connection ends.
  func registerProducer(_ producer: any PushProducer)

  /// Forgets the registered producer.
  func unregisterProducer()

  /// The clock of the reactor this connection lives on, for timeouts (`ManualClock` in tests).
  var scheduler: any Scheduler { get }

  /// Limits this connection's own reading and writing to `limit` (nil lifts it).
  func setRateLimit(_ limit: RateLimit?)

  /// Makes this connection share `group`'s limit with the group's other members.
  func joinRateLimitGroup(_ group: RateLimitGroup)

  /// Turns Nagle's algorithm off (`true`) or on. Throws the socket error.
  func setTCPNoDelay(_ enabled: Bool) throws(SocketError)

  /// Turns TCP keep-alive probes on or off. Throws the socket error.
  func setKeepAlive(_ enabled: Bool) throws(SocketError)
}

extension Transport {
  /// Stops reading, sends everything queued, then closes; `connectionLost(.closedByUs)` follows.
  public func loseConnection() { loseConnection(reason: .closedByUs) }

  /// Closes now, discarding queued output; `connectionLost(.aborted)` follows.
  public func abortConnection() { abortConnection(reason: .aborted) }

  /// Queues the bytes of `bytes`.
  public func write(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { write($0.bytes) }
  }

  /// Queues the UTF-8 bytes of `string`.
  public func write(_ string: String) {
    var string = string
    string.withUTF8 { write(UnsafeRawBufferPointer($0).bytes) }
  }

  /// Queues each buffer in turn (Twisted's `writeSequence`).
  public func writeSequence(_ parts: [[UInt8]]) {
    for part in parts { write(part) }
  }
}
