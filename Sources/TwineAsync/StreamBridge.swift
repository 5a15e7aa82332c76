import Twine

/// The `Protocol` an ``AsyncConnection`` is to its transport: it forwards the transport's
/// callbacks (data, half-close, loss) and its flow control (as the registered producer).
///
/// The transport holds it until the connection closes, and it holds the connection: an open
/// connection lives on even when its task has let go of it (as a protocol does). The
/// connection does not hold it back: the close, which drops the protocol, leaves no cycle.
final class StreamBridge: Protocol, PushProducer, HalfCloseable {
  let connection: AsyncConnection
  /// Told once the connection is made (a listener's queue, a connect's continuation).
  var onMade: ((AsyncConnection) -> Void)?

  init(_ connection: AsyncConnection) {
    self.connection = connection
    super.init()
  }

  required init() { fatalError("StreamBridge is made by its AsyncConnection") }

  override func connectionMade() {
    connection.made(transport, producer: self)
    let onMade = self.onMade
    self.onMade = nil
    onMade?(connection)
  }

  override func dataReceived(_ data: RawSpan) { connection.received(data) }

  func readConnectionLost() { connection.inputFinished() }

  override func connectionLost(_ reason: CloseReason) { connection.lost(reason) }

  func pauseProducing() { connection.pauseWriting() }

  func resumeProducing() { connection.resumeWriting() }

  func stopProducing() {}
}
