/// Where a client connects, parsed from a string in Twisted's endpoint syntax
/// (`clientFromString`). `Reactor.connect(_:factory:)` connects to one.
///
/// | string | meaning |
/// |---|---|
/// | `tcp:HOST:PORT[:timeout=S]` (or `tcp:host=HOST:port=PORT`) | TCP; a name is resolved without blocking |
/// | `unix:PATH[:timeout=S]` (or `unix:path=PATH`) | a UNIX-domain socket |
/// | `ssl:HOST:PORT[:timeout=S][:certKey=CERT][:privateKey=KEY][:caCertsFile=CA]` | TLS, verifying the server's name |
///
/// `timeout` is seconds (default 30). Throws ``EndpointError`` naming the bad part.
public enum ClientEndpoint: Sendable, Hashable {
  /// TCP to `host` (a name or a numeric address) and `port`.
  case tcp(host: String, port: Int, timeout: Double)
  /// A UNIX-domain stream socket at `path`.
  case unix(path: String, timeout: Double)
  /// TLS to `host`:`port`; `tls` says whom to trust and which certificate to present.
  case ssl(host: String, port: Int, timeout: Double, tls: TLSOptions)

  /// Parses `description` (see the table above).
  public init(_ description: String) throws(EndpointError) {
    let parts = try EndpointDescription(description)
    func timeout(_ bound: [String: String]) throws(EndpointError) -> Double {
      try bound["timeout"].map { value throws(EndpointError) in try parts.seconds("timeout", value) } ?? 30
    }
    switch parts.type {
    case "tcp":
      let bound = try parts.bind(["host", "port", "timeout"], required: ["host", "port"])
      self = .tcp(
        host: bound["host"]!, port: try parts.integer("port", bound["port"]!, in: 1...65535),
        timeout: try timeout(bound))
    case "unix":
      let bound = try parts.bind(["path", "timeout"], required: ["path"])
      self = .unix(path: bound["path"]!, timeout: try timeout(bound))
    case "ssl":
      let bound = try parts.bind(
        ["host", "port", "timeout", "certKey", "privateKey", "caCertsFile"], required: ["host", "port"])
      let certificate = bound["certKey"]
      let tls = TLSOptions.client(
        trustedCAFile: bound["caCertsFile"], certificateFile: certificate,
        privateKeyFile: bound["privateKey"] ?? certificate)
      self = .ssl(
        host: bound["host"]!, port: try parts.integer("port", bound["port"]!, in: 1...65535),
        timeout: try timeout(bound), tls: tls)
    default:
      throw EndpointError(description, part: parts.type, problem: "unknown client endpoint type (tcp, unix, ssl)")
    }
  }
}

/// Parses a client endpoint string (Twisted's `clientFromString`, without the reactor:
/// `reactor.connect(endpoint, factory:)` connects). Throws ``EndpointError``.
public func clientFromString(_ description: String) throws(EndpointError) -> ClientEndpoint {
  try ClientEndpoint(description)
}
