import TwineCore

/// An in-memory ``Transport`` (Twisted's `StringTransport`, NIO's `EmbeddedChannel`):
/// drive a protocol with ``receive(_:)-(String)`` and read what it wrote in ``written``.
///
/// It behaves like Twine's TCP transport where a protocol can tell: the factory's
/// counters are updated, `connectionLost` comes exactly once, and a close asked for
/// inside a callback happens when that callback returns. As with the real transport, a
/// connected protocol and its transport hold each other until the connection closes: end
/// a test with ``peerClosed(_:)`` (or let the protocol close) so neither leaks.
public final class StringTransport: Transport {
  /// Every byte the protocol wrote, in order.
  public private(set) var written: [UInt8] = []
  /// True once the protocol called `loseConnection()` or `abortConnection()`, or the connection closed.
  public private(set) var disconnecting = false
  /// True once the protocol called `abortConnection()`.
  public private(set) var aborted = false
  /// True while the protocol has paused reading.
  public private(set) var producerPaused = false
  /// The reason `connectionLost` was given, once it was.
  public private(set) var closeReason: CloseReason?
  /// The remote address the protocol sees.
  public var peer: SocketAddress
  /// The local address the protocol sees.
  public var host: SocketAddress
  /// The peer credentials the protocol sees (nil, as over TCP, unless a test sets them).
  public var peerCredentials: PeerCredentials?
  /// Last values set through the socket-option calls.
  public private(set) var noDelay = false
  /// Last value set through ``setKeepAlive(_:)``.
  public private(set) var keepAlive = false
  /// The clock the protocol's timeouts run on; advance it to fire them.
  public let clock: ManualClock
  /// When true, writes wait in ``pendingWriteCount`` (a peer that does not read)
  /// until ``flushWrites()``, and the flow-control limits apply to them.
  public var holdWrites = false
  /// When the protocol's producer is paused and resumed, and when the connection aborts.
  public var writeBufferLimits = WriteBufferLimits.default
  /// The producer registered by the protocol, if any.
  public private(set) var producer: (any PushProducer)?
  /// True once the protocol shut its write side with ``loseWriteConnection()``.
  public private(set) var writeClosed = false
  /// True once ``peerHalfClosed()`` shut the peer's side.
  public private(set) var readClosed = false
  /// True while the transport holds the producer (or, with none, the protocol's input) paused for flow control.
  public private(set) var writePaused = false

  private var proto: Protocol?
  private var factory: Factory?
  private var callbackDepth = 0
  private var pendingClose: CloseReason?
  private var heldWhilePaused: [UInt8] = []
  private var held: [UInt8] = []
  private var closingReason: CloseReason?
  /// Set by an abort: later writes are dropped, as on the real transport.
  private var dropWrites = false

  /// Makes a transport with the given addresses (defaults: 127.0.0.1:1234 → 127.0.0.1:8025).
  public init(
    peer: SocketAddress = SocketAddress(ipv4: (127, 0, 0, 1), port: 1234),
    host: SocketAddress = SocketAddress(ipv4: (127, 0, 0, 1), port: 8025),
    clock: ManualClock = ManualClock()
  ) {
    self.peer = peer
    self.host = host
    self.clock = clock
  }

  /// Builds a protocol with `factory` for ``peer`` and connects it, as an accepting port
  /// would. Returns nil (counting a refusal) when the factory refuses.
  @discardableResult
  public func connect(factory: Factory) -> Protocol? {
    guard let proto = factory.buildProtocol(peer) else {
      factory.counters.noteRefused()
      return nil
    }
    self.factory = factory
    factory.counters.noteOpened()
    connect(proto)
    return proto
  }

  /// Connects `proto` to this transport (`connectionMade` runs).
  public func connect(_ proto: Protocol) {
    self.proto = proto
    inCallback { proto.makeConnection(self) }
  }

  /// True once `connectionLost` was called.
  public var isClosed: Bool { closeReason != nil }

  /// The written bytes as UTF-8 text.
  public var writtenString: String { String(decoding: written, as: UTF8.self) }

  /// Forgets what was written so far.
  public func clearWritten() { written.removeAll() }

  /// Delivers `bytes` to the protocol as one `dataReceived` (held while paused).
  public func receive(_ bytes: [UInt8]) {
    guard let proto, closeReason == nil, !disconnecting else { return }
    if producerPaused || (writePaused && producer == nil) {
      heldWhilePaused += bytes
      return
    }
    inCallback { bytes.withUnsafeBytes { proto.dataReceived($0.bytes) } }
  }

  /// Delivers the UTF-8 bytes of `text`.
  public func receive(_ text: String) { receive(Array(text.utf8)) }

  /// The peer shuts its write side: a ``HalfCloseable`` protocol hears
  /// `readConnectionLost`; any other protocol's connection closes (`.closedByPeer`)
  /// once held writes are flushed.
  public func peerHalfClosed() {
    guard let proto, closeReason == nil, !readClosed else { return }
    readClosed = true
    if writeClosed {
      closeWhenFlushed(.closedByUs)
    } else if !disconnecting, let halfCloseable = proto as? any HalfCloseable {
      inCallback { halfCloseable.readConnectionLost() }
    } else {
      closeWhenFlushed(closingReason ?? .closedByPeer)
    }
  }

  /// Closes for `reason` now if nothing is held, else once ``flushWrites(_:)`` empties the queue.
  private func closeWhenFlushed(_ reason: CloseReason) {
    disconnecting = true
    closingReason = reason
    if held.isEmpty { close(reason) }
  }

  /// The peer closes (or resets, per `reason`): `connectionLost(reason)` follows.
  public func peerClosed(_ reason: CloseReason = .closedByPeer) { close(reason) }

  // MARK: Transport

  /// Appends `data` to ``written`` (or, with ``holdWrites``, to the pending queue); ignored after close.
  public func write(_ data: RawSpan) {
    guard closeReason == nil, !dropWrites else { return }
    factory?.counters.noteBytesOut(data.byteCount)
    guard holdWrites || !held.isEmpty else {  // bytes still held go first
      data.withUnsafeBytes { written.append(contentsOf: $0) }
      return
    }
    data.withUnsafeBytes { held.append(contentsOf: $0) }
    if held.count > writeBufferLimits.hardLimit {
      held = []
      dropWrites = true
      close(.bufferOverflow)
    } else if held.count > writeBufferLimits.highWater && !writePaused {
      writePaused = true
      producer?.pauseProducing()
    }
  }

  /// Moves up to `count` held bytes (all by default) to ``written``, as a peer reading
  /// them would; resumes the producer once the queue is at the low-water mark.
  public func flushWrites(_ count: Int = .max) {
    let moved = min(count, held.count)
    written.append(contentsOf: held[..<moved])
    held.removeFirst(moved)
    // As on TCP, this runs as a callback of the connection: a close inside waits for its end.
    inCallback {
      if writePaused && held.count <= writeBufferLimits.lowWater && closeReason == nil {
        writePaused = false
        if let producer {
          producer.resumeProducing()
        } else if !producerPaused {
          let bytes = heldWhilePaused
          heldWhilePaused = []
          if !bytes.isEmpty { receive(bytes) }
        }
      }
    }
    if held.isEmpty, let reason = closingReason, closeReason == nil { close(reason) }
  }

  /// Closes once held writes are flushed (at once without ``holdWrites``): `connectionLost(reason)`.
  public func loseConnection(reason: CloseReason) {
    guard closeReason == nil, !disconnecting else { return }
    disconnecting = true
    closingReason = reason
    // Inside a callback the close waits for its end, so later writes there still count.
    if held.isEmpty && callbackDepth == 0 { close(reason) }
  }

  /// Records the shut write side in ``writeClosed``; later writes are dropped. With the
  /// peer's side already shut, the connection closes (`.closedByUs`).
  public func loseWriteConnection() {
    guard closeReason == nil, !writeClosed, !disconnecting else { return }
    writeClosed = true
    dropWrites = true
    if readClosed { closeWhenFlushed(.closedByUs) }
  }

  /// Closes at once, dropping held writes: `connectionLost(reason)`.
  public func abortConnection(reason: CloseReason) {
    guard closeReason == nil else { return }
    aborted = true
    disconnecting = true
    dropWrites = true
    held = []
    close(reason)
  }

  /// Holds received bytes until ``resumeProducing()``.
  public func pauseProducing() { producerPaused = true }

  /// Delivers held bytes and resumes delivery. (Unlike TCP, which delivers them from the
  /// loop, they arrive inside this call.)
  public func resumeProducing() {
    guard producerPaused else { return }
    producerPaused = false
    let held = heldWhilePaused
    heldWhilePaused = []
    if !held.isEmpty { receive(held) }
  }

  /// Bytes held by ``holdWrites``; always 0 without it.
  public var pendingWriteCount: Int { held.count }

  /// The clock, as the protocol's scheduler.
  public var scheduler: any Scheduler { clock }

  /// The limit last set with ``setRateLimit(_:)``.
  public private(set) var rateLimit: RateLimit?
  /// The groups joined with ``joinRateLimitGroup(_:)``, in order.
  public private(set) var rateLimitGroups: [RateLimitGroup] = []

  /// Records the limit in ``rateLimit`` (the in-memory transport does not throttle).
  public func setRateLimit(_ limit: RateLimit?) { rateLimit = limit }

  /// Records the group in ``rateLimitGroups``.
  public func joinRateLimitGroup(_ group: RateLimitGroup) { rateLimitGroups.append(group) }

  /// Records `producer`; flow control pauses and resumes it (at once, if the queue is past its high-water mark).
  public func registerProducer(_ producer: any PushProducer) {
    guard closeReason == nil else { return }
    self.producer = producer
    if writePaused { producer.pauseProducing() }
  }

  /// Forgets the producer.
  public func unregisterProducer() { producer = nil }

  /// Records the value in ``noDelay``.
  public func setTCPNoDelay(_ enabled: Bool) throws(SocketError) { noDelay = enabled }

  /// Records the value in ``keepAlive``.
  public func setKeepAlive(_ enabled: Bool) throws(SocketError) { keepAlive = enabled }

  // MARK: Closing, as the real transport does it

  private func inCallback(_ body: () -> Void) {
    callbackDepth += 1
    body()
    callbackDepth -= 1
    guard callbackDepth == 0 else { return }
    if let reason = pendingClose {
      pendingClose = nil
      finishClose(reason)
    } else if let reason = closingReason, held.isEmpty, closeReason == nil {
      finishClose(reason)
    }
  }

  private func close(_ reason: CloseReason) {
    guard closeReason == nil, pendingClose == nil else { return }
    if callbackDepth > 0 {
      pendingClose = reason
    } else {
      finishClose(reason)
    }
  }

  private func finishClose(_ reason: CloseReason) {
    closeReason = reason
    disconnecting = true
    factory?.counters.noteClosed()
    let proto = self.proto
    let producer = self.producer
    self.proto = nil
    self.producer = nil
    producer?.stopProducing()
    proto?.connectionClosed(reason)
  }
}
