/// The rules of one stream connection's life, with no I/O: its phase, the callback depth
/// and a close asked for inside a callback, the read gates, the write side and the
/// flow-control watermarks (SwiftNIO's `SocketChannelLifecycleManager` is the model).
///
/// A transport feeds it events — a callback entered or left, the peer's end of stream,
/// the output queue grown or drained, the protocol's `loseConnection`, `pauseProducing`
/// and the rest — and runs the ``StreamActions`` each event returns. Twine's TCP
/// transport and `TwineTesting`'s `StringTransport` both run this one type, so what a
/// protocol sees in a test is what it meets on a socket.
///
/// ```swift
/// var life = StreamLifecycle()
/// life.opened()
/// life.enterCallback()              // around connectionMade
/// _ = life.loseConnection(.closedByUs, queued: 0)
/// let actions = life.leaveCallback(queued: 0)
/// // actions.finishClose == .closedByUs: the close waited for the callback to end
/// ```
public struct StreamLifecycle: Sendable {
  /// Where the connection is in its life.
  public enum Phase: Sendable, Hashable {
    /// Not connected yet (a client's connect, a TLS server's handshake).
    case connecting
    /// Open: reading and writing.
    case open
    /// Closing once the queued output is flushed (`loseConnection`, or the peer's end of stream).
    case closing
    /// Closed: the close is decided (its ``StreamActions/finishClose`` may wait for a callback to end).
    case closed
  }

  // Laid out small (one reason, a 32-bit depth, the flags together): every connection at rest
  // carries one of these.
  /// While closing, the reason `loseConnection` gave; while a close waits for its callback to end, that close's reason.
  private var reason: CloseReason?
  /// The current phase.
  public private(set) var phase: Phase = .connecting
  /// ``reason`` is a close decided inside a callback, to run when the callback ends.
  private var finishPending = false
  /// The close came after an orderly flush (`loseConnection`, both sides' end of stream), not
  /// an abort or an error: the transport ends with FIN (and TLS's close_notify), never RST.
  public private(set) var closedGracefully = false
  /// The protocol paused reading (`pauseProducing`).
  public private(set) var pausedByUser = false
  /// Queued output passed the high-water mark and has not drained to the low one.
  public private(set) var pausedByFlow = false
  /// The peer ended its side (end of stream).
  public private(set) var peerFinished = false
  /// A ``PushProducer`` is registered: flow control pauses it instead of reading.
  public private(set) var hasProducer = false
  /// `loseWriteConnection` was called: writes are refused; the write side shuts once the queue is empty.
  public private(set) var writeShutRequested = false
  /// Our write side is shut.
  public private(set) var writeShut = false
  /// Whether the transport's read interest is on, as the actions so far have left it.
  public private(set) var readingArmed = false
  /// The transport can shut only its write side (TCP, UNIX; not TLS here). Set before the connection opens.
  public var supportsHalfClose = true
  /// The protocol is ``HalfCloseable``: the peer's end of stream is told to it instead of closing.
  public var protocolHalfCloseable = false
  /// This connection's callbacks on the stack; a close inside one waits for the outermost to end.
  public private(set) var callbackDepth: Int32 = 0

  /// A connection not yet open. The flow-control limits are the transport's: it passes them
  /// with each queue event (they are not stored here, so a connection at rest stays small).
  public init() {}

  /// The reason `loseConnection` gave, used when the flush completes (nil before it, and once closed).
  public var closingReason: CloseReason? { phase == .closing ? reason : nil }

  /// A close decided inside a callback, run when the callback ends.
  public var pendingClose: CloseReason? { finishPending ? reason : nil }

  // MARK: What the transport asks

  /// True while input should be read: open, the peer not finished, not paused by the
  /// protocol, and not held back by flow control (with no producer to pause instead).
  public var wantsInput: Bool {
    phase == .open && !peerFinished && !pausedByUser && !(pausedByFlow && !hasProducer)
  }

  /// True while a write is taken: not closed, and the write side not being shut.
  public var acceptsWrites: Bool { phase != .closed && !writeShutRequested }

  /// Twisted's `transport.disconnecting`: closing or closed.
  public var isDisconnecting: Bool { phase == .closing || phase == .closed }

  /// True once the close is decided.
  public var isClosed: Bool { phase == .closed }

  // MARK: Events

  /// The connection is up (accepted, connected, or its TLS handshake done).
  /// Call ``enterCallback()`` before `connectionMade` and ``leaveCallback(queued:)`` after:
  /// reading starts when that callback ends.
  public mutating func opened() {
    guard phase == .connecting else { return }
    phase = .open
  }

  /// A callback of this connection begins (read, write drained, event, `connectionMade`).
  public mutating func enterCallback() { callbackDepth += 1 }

  /// A callback ends: a close asked for inside it happens now, as does a flushed
  /// `loseConnection`, and reading starts if it was resumed inside.
  public mutating func leaveCallback(queued: Int) -> StreamActions {
    callbackDepth -= 1
    var actions = StreamActions()
    guard callbackDepth == 0 else { return actions }
    if finishPending {
      finishPending = false
      actions.finishClose = reason
      reason = nil
      return actions
    }
    if phase == .closing && queued == 0 { return closeGracefully(reason ?? .closedByPeer) }
    syncReading(&actions)
    return actions
  }

  /// Ends the connection for `reason` (an error, an abort, a refusal, shutdown): at once,
  /// or, inside a callback, when it ends. Queued output is discarded.
  public mutating func close(_ reason: CloseReason) -> StreamActions {
    var actions = StreamActions()
    guard phase != .closed else { return actions }
    phase = .closed
    if callbackDepth > 0 {
      self.reason = reason
      finishPending = true
    } else {
      self.reason = nil
      actions.finishClose = reason
    }
    return actions
  }

  /// `loseConnection(reason:)`: stop reading, flush, then close with `reason`. While
  /// connecting there is nothing to flush: the attempt ends (`.aborted` for a plain close).
  public mutating func loseConnection(_ reason: CloseReason, queued: Int) -> StreamActions {
    switch phase {
    case .connecting:
      return close(reason == .closedByUs ? .aborted : reason)
    case .open:
      phase = .closing
      self.reason = reason
      // Inside a callback the close waits for it to end, so writes made after this still go out.
      if queued == 0 && callbackDepth == 0 { return closeGracefully(reason) }
      var actions = StreamActions()
      syncReading(&actions)
      return actions
    case .closing:
      if self.reason == nil { self.reason = reason }
      return StreamActions()
    case .closed:
      return StreamActions()
    }
  }

  /// `loseWriteConnection()`: refuse writes, and shut the write side once the queue is
  /// empty. A transport without half-close closes instead, as `loseConnection()` does.
  public mutating func loseWriteConnection(queued: Int) -> StreamActions {
    guard supportsHalfClose else { return loseConnection(.closedByUs, queued: queued) }
    guard phase == .open, !writeShutRequested else { return StreamActions() }
    writeShutRequested = true
    var actions = StreamActions()
    if queued == 0 { shutWrite(&actions) }
    return actions
  }

  /// The peer ended its side. A ``HalfCloseable`` protocol hears `readConnectionLost`
  /// and may go on writing; otherwise queued output is flushed (the peer may still read),
  /// then the connection closes (`.closedByPeer`; `.closedByUs` if our side was shut first).
  public mutating func peerFinished(queued: Int) -> StreamActions {
    var actions = StreamActions()
    guard !peerFinished else { return actions }
    peerFinished = true
    guard phase == .open || phase == .closing else { return actions }
    syncReading(&actions)
    if writeShut {
      return merge(actions, closeGracefully(.closedByUs))
    } else if phase == .open && supportsHalfClose && protocolHalfCloseable {
      actions.readConnectionLost = true
    } else if queued == 0 {
      return merge(actions, closeGracefully(.closedByPeer))
    } else {
      phase = .closing
      actions.flushAfterPeerEOF = true
    }
    return actions
  }

  /// Output was queued and the queue now holds `queued` bytes: past the hard limit the
  /// connection aborts (`.bufferOverflow`); past the high-water mark flow control pauses
  /// the producer (or, with none, reading).
  public mutating func queueGrew(to queued: Int, limits: WriteBufferLimits) -> StreamActions {
    var actions = StreamActions()
    guard phase != .closed else { return actions }
    if queued > limits.hardLimit {
      actions = close(.bufferOverflow)
      actions.overflowed = true
    } else if queued > limits.highWater && !pausedByFlow {
      pausedByFlow = true
      actions.watchLowWater = true
      if hasProducer { actions.pauseProducer = true } else { syncReading(&actions) }
    }
    return actions
  }

  /// The output queue drained to `queued` bytes (call it inside a callback: a flushed
  /// `loseConnection` closes when that callback ends): flow control resumes at the
  /// low-water mark, and a write side waiting to shut shuts once it is empty.
  public mutating func writeDrained(queued: Int, limits: WriteBufferLimits) -> StreamActions {
    var actions = StreamActions()
    guard phase != .closed else { return actions }
    if pausedByFlow && queued <= limits.lowWater {
      pausedByFlow = false
      actions.watchLowWater = false
      if hasProducer { actions.resumeProducer = true } else { syncReading(&actions) }
    }
    if writeShutRequested && !writeShut && phase == .open && queued == 0 { shutWrite(&actions) }
    return actions
  }

  /// `pauseProducing()`: stop reading until ``resume()``.
  public mutating func pause() -> StreamActions {
    var actions = StreamActions()
    guard phase != .closed, !pausedByUser else { return actions }
    pausedByUser = true
    syncReading(&actions)
    return actions
  }

  /// `resumeProducing()`: reading may start again (when the current callback ends).
  public mutating func resume() -> StreamActions {
    var actions = StreamActions()
    guard phase != .closed, pausedByUser else { return actions }
    pausedByUser = false
    syncReading(&actions)
    return actions
  }

  /// A producer was registered: flow control pauses it from now on (at once, if paused now).
  public mutating func producerRegistered() -> StreamActions {
    var actions = StreamActions()
    guard phase != .closed else { return actions }
    hasProducer = true
    if pausedByFlow { actions.pauseProducer = true }
    syncReading(&actions)
    return actions
  }

  /// The producer was unregistered: flow control pauses reading from now on.
  public mutating func producerUnregistered() -> StreamActions {
    var actions = StreamActions()
    hasProducer = false
    guard phase != .closed else { return actions }
    syncReading(&actions)
    return actions
  }

  /// The transport's limits changed: a paused queue now resumes at the new low-water mark.
  public func limitsChanged() -> StreamActions {
    var actions = StreamActions()
    if pausedByFlow && phase != .closed { actions.watchLowWater = true }
    return actions
  }

  /// The transport re-applies ``readingArmed`` by itself (after a TLS handshake, which reads on its own).
  public var readingActions: StreamActions {
    var actions = StreamActions()
    if readingArmed { actions.startReading = true } else { actions.stopReading = true }
    return actions
  }

  // MARK: Helpers

  /// ``close(_:)`` after an orderly flush: marks it ``closedGracefully``.
  private mutating func closeGracefully(_ reason: CloseReason) -> StreamActions {
    if phase != .closed { closedGracefully = true }
    return close(reason)
  }

  private mutating func shutWrite(_ actions: inout StreamActions) {
    writeShut = true
    actions.shutWrite = true
    if peerFinished { actions = merge(actions, closeGracefully(.closedByUs)) }
  }

  /// Turns the read interest on or off to match ``wantsInput``: off at once, on only
  /// outside callbacks (a protocol that greets and closes in `connectionMade` never reads).
  private mutating func syncReading(_ actions: inout StreamActions) {
    guard phase != .closed else { return }
    let wanted = wantsInput
    guard wanted != readingArmed else { return }
    if wanted {
      guard callbackDepth == 0 else { return }
      actions.startReading = true
      actions.stopReading = false
    } else {
      actions.stopReading = true
      actions.startReading = false
    }
    readingArmed = wanted
  }

  private func merge(_ first: StreamActions, _ second: StreamActions) -> StreamActions {
    var merged = first
    if let watch = second.watchLowWater { merged.watchLowWater = watch }
    merged.stopReading = merged.stopReading || second.stopReading
    merged.pauseProducer = merged.pauseProducer || second.pauseProducer
    merged.resumeProducer = merged.resumeProducer || second.resumeProducer
    merged.startReading = merged.startReading || second.startReading
    merged.readConnectionLost = merged.readConnectionLost || second.readConnectionLost
    merged.flushAfterPeerEOF = merged.flushAfterPeerEOF || second.flushAfterPeerEOF
    merged.shutWrite = merged.shutWrite || second.shutWrite
    merged.overflowed = merged.overflowed || second.overflowed
    merged.finishClose = merged.finishClose ?? second.finishClose
    return merged
  }
}
