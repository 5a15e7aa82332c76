import Testing
import TwineTesting

/// A producer that records what the transport told it.
final class TallyProducer: PushProducer {
  var log: [String] = []
  func pauseProducing() { log.append("pause") }
  func resumeProducing() { log.append("resume") }
  func stopProducing() { log.append("stop") }
}

@Suite("StringTransport flow control behaves like TCP")
struct StringTransportFlowTests {
  @Test("bytes still held go out before later writes, after holdWrites is turned off")
  func heldBytesKeepTheirOrder() {
    let transport = StringTransport()
    let proto = Protocol()
    transport.connect(proto)
    transport.holdWrites = true
    transport.write("A")
    transport.holdWrites = false
    transport.write("B")
    transport.flushWrites()
    #expect(transport.writtenString == "AB")
    transport.loseConnection()
  }

  @Test("a producer registered while the queue is past its high-water mark is paused at once, later resumed")
  func lateProducerPaused() {
    let transport = StringTransport()
    transport.connect(Protocol())
    transport.holdWrites = true
    transport.writeBufferLimits = WriteBufferLimits(lowWater: 0, highWater: 2, hardLimit: 100)
    transport.write("12345")
    let producer = TallyProducer()
    transport.registerProducer(producer)
    transport.flushWrites()
    transport.loseConnection()
    #expect(producer.log == ["pause", "resume", "stop"])
  }

  @Test("loseConnection from resumeProducing waits for the flush callback to end, as on TCP")
  func closeInsideResumeIsDeferred() {
    final class Finisher: Protocol, PushProducer {
      override func connectionMade() { transport.registerProducer(self) }
      func pauseProducing() {}
      func resumeProducing() {
        guard !transport.disconnecting else { return }
        transport.loseConnection()
        transport.write("last")  // still sent: the close waits for this callback
      }
      func stopProducing() {}
    }
    let transport = StringTransport()
    transport.holdWrites = true
    transport.writeBufferLimits = WriteBufferLimits(lowWater: 0, highWater: 2, hardLimit: 100)
    transport.connect(Finisher())
    transport.write("12345")
    transport.flushWrites()
    #expect(transport.closeReason == nil)  // "last" is held until the peer reads it
    transport.flushWrites()
    #expect(transport.writtenString == "12345last")
    #expect(transport.closeReason == .closedByUs)
  }

  @Test("a peer's half-close ends a plain protocol's connection only after held writes are flushed")
  func halfCloseFlushesFirst() {
    let transport = StringTransport()
    transport.connect(Protocol())
    transport.holdWrites = true
    transport.write("tail")
    transport.peerHalfClosed()
    #expect(transport.closeReason == nil)
    transport.flushWrites()
    #expect(transport.writtenString == "tail" && transport.closeReason == .closedByPeer)
  }
}
