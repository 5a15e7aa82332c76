/// Opt-in to half-closed connections (Twisted's `IHalfCloseableProtocol`): a protocol
/// conforming to this keeps its connection when the peer shuts only its write side.
///
/// Without it, the peer's end of stream ends the connection (after queued output is
/// flushed). With it, ``readConnectionLost()`` is called and the protocol may go on
/// writing, then call ``Transport/loseWriteConnection()`` or `loseConnection()`. Works
/// over TCP and UNIX sockets; a TLS connection ends at the peer's end of stream.
public protocol HalfCloseable: AnyObject {
  /// The peer will send nothing more; writing may go on.
  func readConnectionLost()
}
