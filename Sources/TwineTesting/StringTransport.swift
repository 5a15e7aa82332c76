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
  /// True once the protocol called `loseConnection()`.
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

  private var proto: Protocol?
  private var factory: Factory?
  private var callbackDepth = 0
  private var pendingClose: CloseReason?
  private var heldWhilePaused: [UInt8] = []

  /// Makes a transport with the given addresses (defaults: 127.0.0.1:1234 → 127.0.0.1:8025).
  public init(
    peer: SocketAddress = SocketAddress(ipv4: (127, 0, 0, 1), port: 1234),
    host: SocketAddress = SocketAddress(ipv4: (127, 0, 0, 1), port: 8025)
  ) {
    self.peer = peer
    self.host = host
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
    if producerPaused {
      heldWhilePaused += bytes
      return
    }
    inCallback { bytes.withUnsafeBytes { proto.dataReceived($0.bytes) } }
  }

  /// Delivers the UTF-8 bytes of `text`.
  public func receive(_ text: String) { receive(Array(text.utf8)) }

  /// The peer closes (or resets, per `reason`): `connectionLost(reason)` follows.
  public func peerClosed(_ reason: CloseReason = .closedByPeer) { close(reason) }

  // MARK: Transport

  /// Appends `data` to ``written``; ignored after close.
  public func write(_ data: RawSpan) {
    guard closeReason == nil else { return }
    data.withUnsafeBytes { written.append(contentsOf: $0) }
    factory?.counters.noteBytesOut(data.byteCount)
  }

  /// Closes cleanly at once (nothing is ever pending): `connectionLost(.closedByUs)`.
  public func loseConnection() {
    guard closeReason == nil, !disconnecting else { return }
    disconnecting = true
    close(.closedByUs)  // everything written is already "sent"
  }

  /// Closes at once: `connectionLost(.aborted)`.
  public func abortConnection() {
    guard closeReason == nil else { return }
    aborted = true
    close(.aborted)
  }

  /// Holds received bytes until ``resumeProducing()``.
  public func pauseProducing() { producerPaused = true }

  /// Delivers held bytes and resumes delivery.
  public func resumeProducing() {
    guard producerPaused else { return }
    producerPaused = false
    let held = heldWhilePaused
    heldWhilePaused = []
    if !held.isEmpty { receive(held) }
  }

  /// Always 0: writes are taken at once.
  public var pendingWriteCount: Int { 0 }

  /// Records the value in ``noDelay``.
  public func setTCPNoDelay(_ enabled: Bool) throws(SocketError) { noDelay = enabled }

  /// Records the value in ``keepAlive``.
  public func setKeepAlive(_ enabled: Bool) throws(SocketError) { keepAlive = enabled }

  // MARK: Closing, as the real transport does it

  private func inCallback(_ body: () -> Void) {
    callbackDepth += 1
    body()
    callbackDepth -= 1
    if callbackDepth == 0, let reason = pendingClose {
      pendingClose = nil
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
    factory?.counters.noteClosed()
    let proto = self.proto
    self.proto = nil
    proto?.connectionClosed(reason)
  }
}
