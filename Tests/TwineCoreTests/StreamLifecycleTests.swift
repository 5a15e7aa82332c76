import Testing
import TwineCore

/// Every transition and action of ``StreamLifecycle``, with no socket.
@Suite("StreamLifecycle")
struct StreamLifecycleTests {
  private static let limits = WriteBufferLimits(lowWater: 10, highWater: 100, hardLimit: 1000)

  /// An open connection past its `connectionMade` callback, reading.
  private func open(halfCloseable: Bool = false) -> StreamLifecycle {
    var life = StreamLifecycle()
    life.protocolHalfCloseable = halfCloseable
    life.opened()
    life.enterCallback()
    let actions = life.leaveCallback(queued: 0)
    #expect(actions.startReading)
    #expect(life.readingArmed)
    return life
  }

  private func finished(_ reason: CloseReason) -> StreamActions {
    var actions = StreamActions()
    actions.finishClose = reason
    return actions
  }

  // MARK: Phases

  @Test("a new lifecycle is connecting: no input wanted, writes taken (they wait for the connect)")
  func connecting() {
    let life = StreamLifecycle()
    #expect(life.phase == .connecting)
    #expect(!life.wantsInput)
    #expect(life.acceptsWrites)
    #expect(!life.isDisconnecting)
  }

  @Test("opening starts reading only when the connectionMade callback ends")
  func readingStartsAfterConnectionMade() {
    var life = StreamLifecycle()
    life.opened()
    #expect(life.phase == .open)
    life.enterCallback()
    #expect(life.wantsInput)
    #expect(!life.readingArmed)
    #expect(life.leaveCallback(queued: 0).startReading)
    #expect(life.readingArmed)
  }

  @Test("a protocol that greets and closes in connectionMade never starts reading")
  func greetAndClose() {
    var life = StreamLifecycle()
    life.opened()
    life.enterCallback()
    #expect(life.loseConnection(.closedByUs, queued: 0).isEmpty)
    #expect(life.phase == .closing)
    let actions = life.leaveCallback(queued: 0)
    #expect(actions == finished(.closedByUs))
    #expect(!actions.startReading)
  }

  @Test("opening twice, or after a close, changes nothing")
  func openOnce() {
    var life = open()
    _ = life.close(.aborted)
    life.opened()
    #expect(life.phase == .closed)
  }

  // MARK: Closing

  @Test("a close outside any callback finishes at once; a second close does nothing")
  func closeOutside() {
    var life = open()
    #expect(life.close(.reset) == finished(.reset))
    #expect(life.phase == .closed)
    #expect(!life.acceptsWrites)
    #expect(life.isDisconnecting)
    #expect(life.close(.aborted).isEmpty)
  }

  @Test("a close inside a callback waits for the outermost callback to end")
  func closeDeferred() {
    var life = open()
    life.enterCallback()
    life.enterCallback()
    #expect(life.close(.protocolError("bad")).isEmpty)
    #expect(life.pendingClose == .protocolError("bad"))
    #expect(!life.acceptsWrites)
    #expect(life.leaveCallback(queued: 0).isEmpty)
    #expect(life.leaveCallback(queued: 5) == finished(.protocolError("bad")))
    #expect(life.pendingClose == nil)
  }

  @Test("loseConnection with nothing queued outside a callback closes at once with its reason")
  func loseConnectionNow() {
    var life = open()
    #expect(life.loseConnection(.timedOut, queued: 0) == finished(.timedOut))
  }

  @Test("loseConnection with output queued stops reading, then closes when the queue drains")
  func loseConnectionFlushes() {
    var life = open()
    let actions = life.loseConnection(.closedByUs, queued: 50)
    #expect(actions.stopReading)
    #expect(actions.finishClose == nil)
    #expect(life.phase == .closing)
    #expect(life.acceptsWrites)  // writes made before the close happens still go out
    #expect(life.isDisconnecting)
    life.enterCallback()
    #expect(life.writeDrained(queued: 0, limits: Self.limits).isEmpty)
    #expect(life.leaveCallback(queued: 0) == finished(.closedByUs))
  }

  @Test("loseConnection inside a callback waits for it even with nothing queued")
  func loseConnectionInsideCallback() {
    var life = open()
    life.enterCallback()
    #expect(life.loseConnection(.closedByUs, queued: 0).stopReading)
    #expect(life.leaveCallback(queued: 0) == finished(.closedByUs))
  }

  @Test("a second loseConnection keeps the first reason; after the close it does nothing")
  func loseConnectionTwice() {
    var life = open()
    _ = life.loseConnection(.timedOut, queued: 5)
    #expect(life.loseConnection(.closedByUs, queued: 5).isEmpty)
    #expect(life.closingReason == .timedOut)
    _ = life.close(.aborted)
    #expect(life.loseConnection(.closedByUs, queued: 0).isEmpty)
  }

  @Test("loseConnection while connecting ends the attempt (.aborted for a plain close, else its reason)")
  func loseConnectionConnecting() {
    var plain = StreamLifecycle()
    #expect(plain.loseConnection(.closedByUs, queued: 0) == finished(.aborted))
    var reasoned = StreamLifecycle()
    #expect(reasoned.loseConnection(.timedOut, queued: 0) == finished(.timedOut))
  }

  // MARK: The peer's end of stream

  @Test("end of stream with nothing queued closes (.closedByPeer)")
  func peerFinishedCloses() {
    var life = open()
    life.enterCallback()
    let actions = life.peerFinished(queued: 0)
    #expect(actions.stopReading)
    #expect(life.leaveCallback(queued: 0) == finished(.closedByPeer))
  }

  @Test("end of stream with output queued flushes it first, then closes (.closedByPeer)")
  func peerFinishedFlushes() {
    var life = open()
    let actions = life.peerFinished(queued: 20)
    #expect(actions.flushAfterPeerEOF)
    #expect(actions.stopReading)
    #expect(life.phase == .closing)
    life.enterCallback()
    _ = life.writeDrained(queued: 0, limits: Self.limits)
    #expect(life.leaveCallback(queued: 0) == finished(.closedByPeer))
  }

  @Test("a HalfCloseable protocol hears readConnectionLost and the connection stays open")
  func halfCloseableHears() {
    var life = open(halfCloseable: true)
    let actions = life.peerFinished(queued: 0)
    #expect(actions.readConnectionLost)
    #expect(actions.finishClose == nil)
    #expect(life.phase == .open)
    #expect(!life.wantsInput)
    #expect(life.acceptsWrites)
    #expect(life.peerFinished(queued: 0).isEmpty)  // told once
  }

  @Test("without half-close support (TLS) a HalfCloseable protocol's connection closes at end of stream")
  func noHalfCloseSupport() {
    var life = open(halfCloseable: true)
    life.supportsHalfClose = false
    let actions = life.peerFinished(queued: 0)
    #expect(!actions.readConnectionLost)
    #expect(actions.finishClose == .closedByPeer)
  }

  @Test("end of stream while closing only records it; while connecting or closed it is ignored")
  func peerFinishedOtherPhases() {
    var closing = open()
    _ = closing.loseConnection(.closedByUs, queued: 5)
    let actions = closing.peerFinished(queued: 5)
    #expect(actions.finishClose == nil)
    #expect(actions.flushAfterPeerEOF)
    var connecting = StreamLifecycle()
    #expect(connecting.peerFinished(queued: 0).isEmpty)
  }

  // MARK: Half-close of our side

  @Test("loseWriteConnection with nothing queued shuts the write side at once; writes are refused")
  func shutWriteNow() {
    var life = open()
    let actions = life.loseWriteConnection(queued: 0)
    #expect(actions.shutWrite)
    #expect(life.writeShut)
    #expect(!life.acceptsWrites)
    #expect(life.wantsInput)  // reading goes on
  }

  @Test("loseWriteConnection with output queued shuts once it drains")
  func shutWriteAfterDrain() {
    var life = open()
    #expect(life.loseWriteConnection(queued: 10).isEmpty)
    #expect(life.writeShutRequested && !life.writeShut)
    #expect(!life.acceptsWrites)
    #expect(life.writeDrained(queued: 0, limits: Self.limits).shutWrite)
    #expect(life.loseWriteConnection(queued: 0).isEmpty)  // once
  }

  @Test("the peer's end after our shut closes (.closedByUs); our shut after the peer's end closes too")
  func bothSidesDone() {
    var first = open(halfCloseable: true)
    _ = first.loseWriteConnection(queued: 0)
    #expect(first.peerFinished(queued: 0).finishClose == .closedByUs)
    var second = open(halfCloseable: true)
    #expect(second.peerFinished(queued: 0).readConnectionLost)
    let actions = second.loseWriteConnection(queued: 0)
    #expect(actions.shutWrite)
    #expect(actions.finishClose == .closedByUs)
  }

  @Test("loseWriteConnection without half-close support is loseConnection")
  func shutWriteWithoutSupport() {
    var life = open()
    life.supportsHalfClose = false
    #expect(life.loseWriteConnection(queued: 0) == finished(.closedByUs))
  }

  // MARK: Read gates

  @Test("pause stops reading at once; resume starts it again, only once the callback ends")
  func pauseResume() {
    var life = open()
    life.enterCallback()
    #expect(life.pause().stopReading)
    #expect(!life.wantsInput)
    #expect(life.pause().isEmpty)
    #expect(life.resume().isEmpty)  // inside the callback: not yet
    #expect(life.wantsInput)
    #expect(life.leaveCallback(queued: 0).startReading)
    #expect(life.resume().isEmpty)  // not paused
  }

  @Test("resume outside a callback starts reading at once; pause after the close does nothing")
  func resumeOutside() {
    var life = open()
    _ = life.pause()
    #expect(life.resume().startReading)
    _ = life.close(.aborted)
    #expect(life.pause().isEmpty)
  }

  // MARK: Flow control

  @Test("past the high-water mark reading stops (no producer) and the queue is watched to the low mark")
  func flowPausesReading() {
    var life = open()
    #expect(life.queueGrew(to: 100, limits: Self.limits).isEmpty)  // at the mark: not past it
    let actions = life.queueGrew(to: 101, limits: Self.limits)
    #expect(actions.watchLowWater == true)
    #expect(actions.stopReading)
    #expect(!actions.pauseProducer)
    #expect(life.pausedByFlow && !life.wantsInput)
    #expect(life.queueGrew(to: 200, limits: Self.limits).isEmpty)  // once
    #expect(life.writeDrained(queued: 11, limits: Self.limits).isEmpty)  // above the low mark
    let resumed = life.writeDrained(queued: 10, limits: Self.limits)
    #expect(resumed.watchLowWater == false)
    #expect(resumed.startReading)
    #expect(!life.pausedByFlow && life.wantsInput)
  }

  @Test("with a producer, flow control pauses and resumes it and leaves reading alone")
  func flowPausesProducer() {
    var life = open()
    #expect(life.producerRegistered().isEmpty)
    let actions = life.queueGrew(to: 500, limits: Self.limits)
    #expect(actions.pauseProducer && !actions.stopReading)
    #expect(life.wantsInput)
    let resumed = life.writeDrained(queued: 0, limits: Self.limits)
    #expect(resumed.resumeProducer && !resumed.startReading)
  }

  @Test("a producer registered while paused is paused at once and reading resumes; unregistering stops reading")
  func producerLate() {
    var life = open()
    #expect(life.queueGrew(to: 101, limits: Self.limits).stopReading)
    let registered = life.producerRegistered()
    #expect(registered.pauseProducer)
    #expect(registered.startReading)
    #expect(life.producerUnregistered().stopReading)
  }

  @Test("past the hard limit the connection aborts (.bufferOverflow), deferred inside a callback")
  func hardLimit() {
    var life = open()
    let actions = life.queueGrew(to: 1001, limits: Self.limits)
    #expect(actions.overflowed)
    #expect(actions.finishClose == .bufferOverflow)
    var inside = open()
    inside.enterCallback()
    let deferred = inside.queueGrew(to: 1001, limits: Self.limits)
    #expect(deferred.overflowed && deferred.finishClose == nil)
    #expect(!inside.acceptsWrites)
    #expect(inside.leaveCallback(queued: 1001) == finished(.bufferOverflow))
  }

  @Test("new limits while paused re-arm the drain watch at the new low mark")
  func newLimits() {
    var life = open()
    _ = life.queueGrew(to: 101, limits: Self.limits)
    #expect(life.limitsChanged().watchLowWater == true)
    let wider = WriteBufferLimits(lowWater: 50, highWater: 500, hardLimit: 5000)
    #expect(life.writeDrained(queued: 50, limits: wider).startReading)
    #expect(life.limitsChanged().isEmpty)
  }

  @Test("a drain while closing resumes the producer; after the close nothing happens")
  func drainWhileClosing() {
    var life = open()
    _ = life.producerRegistered()
    _ = life.queueGrew(to: 101, limits: Self.limits)
    _ = life.loseConnection(.closedByUs, queued: 101)
    #expect(life.writeDrained(queued: 0, limits: Self.limits).resumeProducer)
    _ = life.close(.aborted)
    #expect(life.queueGrew(to: 5000, limits: Self.limits).isEmpty)
    #expect(life.writeDrained(queued: 0, limits: Self.limits).isEmpty)
  }

  @Test("readingActions re-applies the read interest as the lifecycle left it")
  func readingActions() {
    var life = open()
    #expect(life.readingActions.startReading)
    _ = life.pause()
    #expect(life.readingActions.stopReading)
  }
}

@Suite("StreamLifecycle's size")
struct StreamLifecycleSizeTests {
  @Test("every connection at rest carries one: it stays within 48 bytes (one reason, a 32-bit depth, flags)")
  func small() {
    #expect(MemoryLayout<StreamLifecycle>.size <= 48, "\(MemoryLayout<StreamLifecycle>.size) bytes")
  }
}
