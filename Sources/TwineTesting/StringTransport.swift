import TwineCore

/// An in-memory ``Transport`` (Twisted's `StringTransport`, NIO's `EmbeddedChannel`):
/// drive a protocol with ``receive(_:)-(String)`` and read what it wrote in ``written``.
///
/// It runs the same rules as Twine's TCP transport — one ``StreamLifecycle`` decides
/// when it closes, pauses, resumes and shuts a side; this type only moves bytes — so the
/// factory's counters are updated, `connectionLost` comes exactly once, a close asked for
/// inside a callback happens when that callback returns, and flow control pauses and
/// aborts at the same marks. As with the real transport, a
/// connected protocol and its transport hold each other until the connection closes: end
/// a test with ``peerClosed(_:)`` (or let the protocol close) so neither leaks.
public final class StringTransport: Transport, QueuedClosing {
  /// Every byte the protocol wrote, in order.
  public private(set) var written: [UInt8] = []
  /// True once the protocol called `loseConnection()` or `abortConnection()`, or the connection closed.
  public var disconnecting: Bool { life.isDisconnecting }
  /// True once the protocol called `abortConnection()`.
  public private(set) var aborted = false
  /// True while the protocol has paused reading.
  public var producerPaused: Bool { life.pausedByUser }
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
  /// until ``flushWrites(_:)``, and the flow-control limits apply to them.
  public var holdWrites = false
  /// When the protocol's producer is paused and resumed, and when the connection aborts.
  public var writeBufferLimits = WriteBufferLimits.default {
    didSet { run(life.limitsChanged()) }
  }
  /// The producer registered by the protocol, if any.
  public private(set) var producer: (any PushProducer)?
  /// True once the protocol called ``loseWriteConnection()``: later writes are dropped.
  public var writeClosed: Bool { life.writeShutRequested }
  /// True once the write side is really shut: asked for, and every held byte flushed.
  public var writeShut: Bool { life.writeShut }
  /// True once ``peerHalfClosed()`` shut the peer's side.
  public var readClosed: Bool { life.peerFinished }
  /// True while the transport holds the producer (or, with none, the protocol's input) paused for flow control.
  public var writePaused: Bool { life.pausedByFlow }
  /// The rules this transport runs, as they stand (the same type the TCP transport runs).
  public var lifecycle: StreamLifecycle { life }

  private var life = StreamLifecycle()
  private var proto: Protocol?
  private var factory: Factory?
  /// Received bytes the protocol is not reading yet (a socket's receive buffer).
  private var unread: [UInt8] = []
  /// Written bytes the peer has not read yet (the output queue).
  private var held: [UInt8] = []

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
    life.protocolHalfCloseable = proto is any HalfCloseable
    life.opened()
    enterCallback()
    proto.makeConnection(self)
    leaveCallback()
  }

  /// True once `connectionLost` was called.
  public var isClosed: Bool { closeReason != nil }

  /// The written bytes as UTF-8 text.
  public var writtenString: String { String(decoding: written, as: UTF8.self) }

  /// Forgets what was written so far.
  public func clearWritten() { written.removeAll() }

  /// Delivers `bytes` to the protocol as one `dataReceived`, or holds them while the
  /// protocol or flow control has paused reading. Ignored once the connection is closing.
  public func receive(_ bytes: [UInt8]) {
    guard proto != nil, life.phase == .open, !life.peerFinished else { return }
    unread += bytes
    deliverUnread()
  }

  /// Delivers the UTF-8 bytes of `text`.
  public func receive(_ text: String) { receive(Array(text.utf8)) }

  /// The peer shuts its write side: a ``HalfCloseable`` protocol hears
  /// `readConnectionLost`; any other protocol's connection closes (`.closedByPeer`)
  /// once held writes are flushed.
  public func peerHalfClosed() {
    guard proto != nil, closeReason == nil else { return }
    enterCallback()
    run(life.peerFinished(queued: held.count))
    leaveCallback()
  }

  /// The peer closes (or resets, per `reason`): `connectionLost(reason)` follows.
  public func peerClosed(_ reason: CloseReason = .closedByPeer) { run(life.close(reason)) }

  // MARK: Transport

  /// Appends `data` to ``written`` (or, with ``holdWrites``, to the pending queue); ignored after close.
  public func write(_ data: RawSpan) {
    guard life.acceptsWrites, closeReason == nil else { return }
    factory?.counters.noteBytesOut(data.byteCount)
    guard holdWrites || !held.isEmpty else {  // bytes still held go first
      data.withUnsafeBytes { written.append(contentsOf: $0) }
      return
    }
    data.withUnsafeBytes { held.append(contentsOf: $0) }
    run(life.queueGrew(to: held.count, limits: writeBufferLimits))
  }

  /// Moves up to `count` held bytes (all by default) to ``written``, as a peer reading
  /// them would; resumes the producer once the queue is at the low-water mark.
  public func flushWrites(_ count: Int = .max) {
    guard closeReason == nil else { return }
    let moved = min(count, held.count)
    written.append(contentsOf: held[..<moved])
    held.removeFirst(moved)
    // As on TCP, this runs as a callback of the connection: a close inside waits for its end.
    enterCallback()
    run(life.writeDrained(queued: held.count, limits: writeBufferLimits))
    leaveCallback()
  }

  /// Closes once held writes are flushed (at once without ``holdWrites``): `connectionLost(reason)`.
  public func loseConnection(reason: CloseReason) { run(life.loseConnection(reason, queued: held.count)) }

  /// Refuses later writes and, once held writes are flushed, shuts the write side
  /// (``writeShut``). With the peer's side already shut, the connection closes (`.closedByUs`).
  public func loseWriteConnection() { run(life.loseWriteConnection(queued: held.count)) }

  /// Closes at once, dropping held writes: `connectionLost(reason)`.
  public func abortConnection(reason: CloseReason) {
    guard !life.isClosed else { return }
    aborted = true
    run(life.close(reason))
  }

  /// Holds received bytes until ``resumeProducing()``.
  public func pauseProducing() { run(life.pause()) }

  /// Delivers held bytes and resumes delivery. (Unlike TCP, which delivers them from the
  /// loop, they arrive inside this call, or when the current callback ends.)
  public func resumeProducing() { run(life.resume()) }

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

  /// The options of the protocol's `startTLS` call, once it made one.
  public private(set) var startedTLS: TLSOptions?

  /// Records the call in ``startedTLS`` (with ``written`` so far, what went out in the clear);
  /// bytes keep flowing as they are, as if TLS were in between. From now on, as over
  /// TLS, there is no half-close.
  public func startTLS(_ options: TLSOptions) {
    guard life.phase == .open, startedTLS == nil else { return }
    startedTLS = options
    life.supportsHalfClose = false
  }

  /// Records `producer`; flow control pauses and resumes it (at once, if the queue is past its high-water mark).
  public func registerProducer(_ producer: any PushProducer) {
    guard !life.isClosed else { return }
    self.producer = producer
    run(life.producerRegistered())
  }

  /// Forgets the producer.
  public func unregisterProducer() {
    producer = nil
    run(life.producerUnregistered())
  }

  /// Records the value in ``noDelay``.
  public func setTCPNoDelay(_ enabled: Bool) throws(SocketError) { noDelay = enabled }

  /// Records the value in ``keepAlive``.
  public func setKeepAlive(_ enabled: Bool) throws(SocketError) { keepAlive = enabled }

  // MARK: Running the lifecycle's actions

  private func enterCallback() {
    clock.closes.enter()
    life.enterCallback()
  }

  private func leaveCallback() {
    run(life.leaveCallback(queued: held.count))
    clock.closes.leave()
  }

  /// Runs what the lifecycle decided. Reading needs no switching here: ``receive(_:)``
  /// asks the lifecycle, and starting to read delivers what waited.
  private func run(_ actions: StreamActions) {
    guard !actions.isEmpty, closeReason == nil else { return }
    if actions.pauseProducer { producer?.pauseProducing() }
    if actions.resumeProducer { producer?.resumeProducing() }
    if actions.startReading { deliverUnread() }
    if actions.readConnectionLost, let halfCloseable = proto as? any HalfCloseable {
      halfCloseable.readConnectionLost()
    }
    if let reason = actions.finishClose { clock.closes.close(self, reason) }
  }

  /// Hands what waits in ``unread`` to the protocol while it wants input, as one read.
  private func deliverUnread() {
    while life.wantsInput, !unread.isEmpty, let proto {
      let bytes = unread
      unread = []
      enterCallback()
      bytes.withUnsafeBytes { proto.dataReceived($0.bytes) }
      leaveCallback()
    }
  }

  /// The one close, run by the clock's ``CloseQueue``: drops what is held, updates the
  /// counters, calls `connectionLost`.
  public func finishQueuedClose(_ reason: CloseReason) {
    guard closeReason == nil else { return }
    closeReason = reason
    held = []
    unread = []
    factory?.counters.noteClosed()
    let proto = self.proto
    let producer = self.producer
    self.proto = nil
    self.producer = nil
    producer?.stopProducing()
    proto?.connectionClosed(reason)
  }
}
