/// An OS-level socket error: the errno value and its text.
public struct SocketError: Error, Sendable, Hashable, CustomStringConvertible {
  /// The errno value (e.g. `ECONNREFUSED`).
  public let code: Int32
  /// The system's text for `code`, as `strerror` gives it.
  public let message: String

  /// Makes an error from an errno value and its text.
  public init(code: Int32, message: String) {
    self.code = code
    self.message = message
  }

  /// `message (errno code)`.
  public var description: String { "\(message) (errno \(code))" }
}

/// Why a connection closed, or why a connection attempt failed. Switch on it.
public enum CloseReason: Error, Sendable, Hashable, CustomStringConvertible {
  /// We closed cleanly: `loseConnection()` after every queued byte was written.
  case closedByUs
  /// The peer closed its side cleanly (end of stream).
  case closedByPeer
  /// We dropped the connection with `abortConnection()`; queued bytes were discarded.
  case aborted
  /// The peer reset the connection (`ECONNRESET` / `EPIPE`).
  case reset
  /// A timeout expired (idle, read, write or connect).
  case timedOut
  /// The connection attempt was refused (`ECONNREFUSED`).
  case connectionRefused
  /// A host name could not be resolved; the text says why.
  case lookupFailed(String)
  /// The reactor shut down while the connection was open.
  case reactorShutdown
  /// The protocol found the peer's bytes malformed; the text says how.
  case protocolError(String)
  /// The peer read too slowly: queued output passed ``WriteBufferLimits/hardLimit``.
  case bufferOverflow
  /// TLS failed: a handshake that did not complete (the peer spoke plaintext, or a
  /// certificate did not verify), a record that did not decrypt, or a peer that closed
  /// without close_notify. The text is OpenSSL's, e.g. `certificate verify failed (hostname mismatch)`.
  case tlsFailed(String)
  /// Any other socket error.
  case error(SocketError)

  /// True for the two orderly endings: ``closedByUs`` and ``closedByPeer``
  /// (Twisted's `ConnectionDone`); false for every kind of `ConnectionLost`.
  public var isClean: Bool { self == .closedByUs || self == .closedByPeer }

  /// A short English phrase for logs.
  public var description: String {
    switch self {
    case .closedByUs: "connection closed cleanly"
    case .closedByPeer: "connection closed by peer"
    case .aborted: "connection aborted"
    case .reset: "connection reset by peer"
    case .timedOut: "connection timed out"
    case .connectionRefused: "connection refused"
    case .lookupFailed(let why): "host lookup failed: \(why)"
    case .reactorShutdown: "reactor shut down"
    case .protocolError(let why): "protocol error: \(why)"
    case .bufferOverflow: "output buffer overflow: the peer reads too slowly"
    case .tlsFailed(let why): "TLS failed: \(why)"
    case .error(let err): err.description
    }
  }
}
