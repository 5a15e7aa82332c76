import TwineCore

/// What the framing protocols share (Twisted's `_PauseableMixin`): bytes that cannot be
/// handed out yet are held in order, delivery pauses and resumes between two frames,
/// and stops for good once the connection is closing or the peer broke the framing.
///
/// Subclass ``LineReceiver``, ``NetstringReceiver`` or one of the ``IntNStringReceiver``
/// classes rather than this class: the parsing lives in them.
///
/// **Pausing.** ``pauseProducing()`` (on the receiver, not on its transport) stops delivery at
/// once, even between two frames of the same read: the rest of that read is kept and handed
/// out by ``resumeProducing()``. It also pauses the transport, so no more is read meanwhile.
///
/// **Closing.** Once `transport.disconnecting` is true (after `loseConnection` or
/// `abortConnection`, from a callback or anywhere else), no further frame is delivered, even
/// if the current read holds more.
open class FramingReceiver: Protocol, PushProducer {
  /// Bytes received but not yet parsed: the rest of a read while paused, or bytes that
  /// arrived (e.g. through `setLineMode(extra:)`) while a callback was running.
  var pending: [UInt8] = []
  /// True while a parse is running: bytes arriving now are queued behind it.
  private var busy = false
  /// ``isPaused`` and ``broken`` in one word, so the per-frame check is one property read
  /// (each read of a class property costs a dynamic exclusivity check).
  private(set) var halt: UInt8 = 0
  private static let pausedBit: UInt8 = 1
  private static let brokenBit: UInt8 = 2

  /// Set once the peer's bytes cannot be parsed further: nothing more is delivered.
  var broken: Bool {
    get { halt & Self.brokenBit != 0 }
    set { halt = newValue ? halt | Self.brokenBit : halt & ~Self.brokenBit }
  }

  /// True between ``pauseProducing()`` and ``resumeProducing()``.
  public private(set) var isPaused: Bool {
    get { halt & Self.pausedBit != 0 }
    set { halt = newValue ? halt | Self.pausedBit : halt & ~Self.pausedBit }
  }

  /// Makes a receiver; `Factory` calls this through the protocol's type.
  public required init() { super.init() }

  /// Bytes held now because they could not be handed out yet (a partial frame, or input
  /// kept while paused). Never more than the subclass's `maxLength` plus one read.
  public var bufferedByteCount: Int { pending.count + partialByteCount }

  /// Parses `data` into frames and hands each to the subclass's callback. Override to
  /// see every read (e.g. to call `resetTimeout()`), and call `super`.
  open override func dataReceived(_ data: RawSpan) {
    data.withUnsafeBytes { receive($0) }
  }

  /// The peer broke the framing (a malformed or over-long frame); `message` says how.
  /// Nothing more is delivered on this connection. The default closes it with
  /// `.protocolError(message)`, after sending what is queued.
  open func framingError(_ message: String) {
    transport?.loseConnection(reason: .protocolError(message))
  }

  // MARK: PushProducer

  /// Stops delivering frames, at once, and pauses the transport. Frames already in the
  /// current read are kept for ``resumeProducing()``.
  public func pauseProducing() {
    isPaused = true
    if connected { transport.pauseProducing() }
  }

  /// Delivers the frames held since ``pauseProducing()`` (in order, before anything newer),
  /// then resumes the transport.
  public func resumeProducing() {
    guard isPaused else { return }
    isPaused = false
    deliverPending()
    if !isPaused && !isFinished { transport.resumeProducing() }
  }

  /// Stops for good: nothing more is delivered, and the connection is closed.
  public func stopProducing() {
    broken = true
    pending = []
    if connected { transport.loseConnection() }
  }

  // MARK: For the subclasses in this module

  /// Parses `bytes` in order, delivering every complete frame and keeping a trailing
  /// partial frame in the subclass's own state. Returns how many bytes were used: all of
  /// them, unless ``shouldStop`` turned true after a callback.
  func parse(_ bytes: UnsafeRawBufferPointer) -> Int { bytes.count }

  /// Bytes of a partial frame the subclass holds.
  var partialByteCount: Int { 0 }

  /// True when no frame may be delivered now: paused, or finished.
  final var shouldStop: Bool { halt != 0 || isFinished }

  /// True once nothing will ever be delivered again: the framing broke, or the connection is closing or closed.
  final var isFinished: Bool { broken || !connected || transport.disconnecting }

  /// Marks the framing broken and reports `message` to ``framingError(_:)``.
  final func fail(_ message: String) {
    broken = true
    pending = []
    framingError(message)
  }

  /// Feeds `input`, borrowed: parsed in place when nothing is held, queued otherwise.
  final func receive(_ input: UnsafeRawBufferPointer) {
    guard !isFinished else { return }
    if busy || isPaused || !pending.isEmpty {
      pending.append(contentsOf: input)
      deliverPending()
      return
    }
    busy = true
    let used = parse(input)
    if used < input.count && !isFinished {
      // Paused: the rest goes before anything queued while the callbacks ran.
      pending.insert(contentsOf: input[used...], at: 0)
    }
    drainLocked()
    busy = false
  }

  /// Parses what is held, unless a parse is already running (it will) or delivery is paused.
  final func deliverPending() {
    guard !busy else { return }
    busy = true
    drainLocked()
    busy = false
  }

  private func drainLocked() {
    while !pending.isEmpty {
      if isFinished {
        pending = []
        return
      }
      if isPaused { return }
      var chunk: [UInt8] = []
      swap(&chunk, &pending)
      let used = chunk.withUnsafeBytes { parse($0) }
      if used < chunk.count && !isFinished { pending.insert(contentsOf: chunk[used...], at: 0) }
      if used == 0 && !shouldStop {
        assertionFailure("a parser used no bytes without stopping")
        return
      }
    }
  }
}
