/// What only some ``TCPConnection``s need, kept out of the connection itself and made on
/// first use: an idle plain connection carries one nil pointer for all of it (it is most
/// of what a connection costs at rest).
final class ConnectionExtras {
  /// The producer flow control pauses and resumes.
  var producer: (any PushProducer)?
  /// The TLS layer, for a connection that speaks TLS.
  var tls: TLSSession?
  /// The direct TLS layer, for a connection accepted on a TLS port (nil once on a bufferevent).
  var tlsStream: TLSStream?
  /// Set when `connect()` itself failed: the reason the attempt ends with, whatever libevent reports next.
  var connectFailure: CloseReason?
  /// The port's handshake slot this connection holds until its TLS handshake ends.
  var handshakeSlot: HandshakeBudget?
  /// Flow-control limits set by the protocol (nil: ``WriteBufferLimits/default``).
  var limits: WriteBufferLimits?
  /// The local address, asked of the socket once.
  var hostAddress: SocketAddress?
}
