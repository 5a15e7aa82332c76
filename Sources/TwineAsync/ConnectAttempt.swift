import Twine

/// The client factory behind ``AsyncReactor/connect(host:port:timeout:)``: builds the
/// connection's bridge and resumes the waiting task once, with the connection or the reason
/// the attempt failed. Loop thread only.
final class ConnectAttempt: ClientFactory {
  let executor: ReactorExecutor
  private var continuation: UnsafeContinuation<AsyncConnection, any Error>?
  /// The attempt, to stop when the waiting task is cancelled.
  var connector: (any Connector)?

  init(executor: ReactorExecutor, continuation: UnsafeContinuation<AsyncConnection, any Error>) {
    self.executor = executor
    self.continuation = continuation
    super.init(StreamBridge.self)
  }

  override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    guard continuation != nil else { return nil }  // cancelled meanwhile
    let bridge = StreamBridge(AsyncConnection(executor: executor, peer: peer))
    bridge.onMade = { [weak self] connection in
      guard let self, let continuation = self.continuation else { return connection.refuse() }
      self.continuation = nil
      self.connector = nil
      continuation.resume(returning: connection)
    }
    return bridge
  }

  override func clientConnectionFailed(_ connector: any Connector, reason: CloseReason) {
    fail(reason)
  }

  /// Ends the attempt with `reason` (a `CloseReason`: a failure, or `.aborted` when
  /// cancelled; or the `TwineError` that kept it from starting).
  func fail(_ reason: any Error) {
    guard let continuation else { return }
    self.continuation = nil
    let connector = self.connector
    self.connector = nil
    connector?.stopConnecting()
    continuation.resume(throwing: reason)
  }
}
