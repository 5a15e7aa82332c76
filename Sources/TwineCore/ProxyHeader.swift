/// What a PROXY protocol header (HAProxy's, version 1 or 2) says about a connection that
/// came through a proxy: who the client really is and which address it connected to.
///
/// ``ProxyHeaderParser`` reads one from the first bytes of a connection; a `haproxy:`
/// endpoint does that before the protocol's `connectionMade`, so `transport.peer` is
/// ``source`` when the header names one.
public struct ProxyHeader: Sendable, Hashable {
  /// The header's version: the text form (`PROXY TCP4 …\r\n`) or the binary one.
  public enum Version: Sendable, Hashable {
    /// Version 1, the human-readable line.
    case v1
    /// Version 2, the binary form.
    case v2
  }

  /// What the proxy asks for.
  public enum Command: Sendable, Hashable {
    /// The connection is relayed for a client: ``source`` and ``destination`` say who (unless
    /// the family is unspecified, v1's `UNKNOWN`).
    case proxy
    /// Version 2 only: the proxy's own connection (a health check). The socket's addresses stand.
    case local
  }

  /// One type-length-value field of a version 2 header (ALPN, authority, TLS facts, …), uninterpreted.
  public struct TLV: Sendable, Hashable {
    /// The field's type (`PP2_TYPE_ALPN` is 0x01, `PP2_TYPE_AUTHORITY` 0x02, …).
    public let type: UInt8
    /// The field's bytes.
    public let value: [UInt8]

    /// Makes a field of `type` holding `value`.
    public init(type: UInt8, value: [UInt8]) {
      self.type = type
      self.value = value
    }
  }

  /// Version 1 or 2.
  public let version: Version
  /// ``Command/proxy`` or ``Command/local``.
  public let command: Command
  /// The client's address; nil for ``Command/local``, v1's `UNKNOWN` and v2's unspecified family.
  public let source: SocketAddress?
  /// The address the client connected to (the proxy's front); nil when ``source`` is.
  public let destination: SocketAddress?
  /// Version 2's extra fields, in order; empty for version 1.
  public let tlvs: [TLV]

  /// Makes a header from its parts.
  public init(
    version: Version, command: Command, source: SocketAddress?, destination: SocketAddress?, tlvs: [TLV] = []
  ) {
    self.version = version
    self.command = command
    self.source = source
    self.destination = destination
    self.tlvs = tlvs
  }
}
