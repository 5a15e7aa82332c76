/// Where a server listens, parsed from a string in Twisted's endpoint syntax
/// (`serverFromString`): `tcp:8025:interface=127.0.0.1`, `unix:/run/echo.sock:mode=660`,
/// `haproxy:tcp:8025`. `Reactor.listen(_:factory:)` serves one.
///
/// | string | meaning |
/// |---|---|
/// | `tcp:PORT[:interface=ADDR][:backlog=N]` | TCP on IPv4 (every interface unless `interface`) |
/// | `tcp6:PORT[:interface=ADDR][:backlog=N]` | TCP on IPv6 (`::` unless `interface`) |
/// | `unix:PATH[:mode=OCTAL][:backlog=N]` | a UNIX-domain socket file (mode `666`) |
/// | `ssl:PORT:privateKey=KEY[:certKey=CERT][:extraCertChain=CHAIN][:interface=…][:backlog=…]` | TLS (`certKey` defaults to `privateKey`) |
/// | `udp:PORT[:interface=ADDR]` | UDP (servers only) |
/// | `systemd:domain=INET\|INET6\|UNIX:index=N` (or `name=NAME`) | a socket passed by systemd (`LISTEN_FDS`) |
/// | `haproxy:ENDPOINT` | ENDPOINT, each connection starting with a PROXY protocol header |
///
/// A backslash makes the next character literal: `unix:/tmp/a\:b` is the path `/tmp/a:b`.
/// A bad string throws an ``EndpointError`` naming the bad part.
public indirect enum ServerEndpoint: Sendable, Hashable, CustomStringConvertible {
  /// TCP over IPv4: `interface` is a numeric address, empty for every interface.
  case tcp(port: Int, interface: String, backlog: Int)
  /// TCP over IPv6: `interface` is a numeric IPv6 address (`::` for every interface).
  case tcp6(port: Int, interface: String, backlog: Int)
  /// A UNIX-domain stream socket at `path` with file permissions `mode`.
  case unix(path: String, mode: UInt32, backlog: Int)
  /// TLS over TCP: the PEM files of the key, the certificate and extra chain certificates.
  case ssl(
    port: Int, interface: String, backlog: Int, privateKey: String, certKey: String, extraCertChain: String?)
  /// UDP (for a `DatagramProtocol`, not a factory).
  case udp(port: Int, interface: String)
  /// A listening socket passed by systemd (or any supervisor following its protocol).
  case systemd(domain: SystemdDomain, socket: SystemdSocket)
  /// `inner`, reading a PROXY protocol header (v1 or v2) first on each connection.
  case haproxy(ServerEndpoint)

  /// The address family of a socket passed by systemd, as Twisted names it.
  public enum SystemdDomain: String, Sendable, Hashable {
    /// IPv4.
    case inet = "INET"
    /// IPv6.
    case inet6 = "INET6"
    /// UNIX domain.
    case unix = "UNIX"
  }

  /// Which of the sockets systemd passed: by position, or by its `FileDescriptorName=`.
  public enum SystemdSocket: Sendable, Hashable {
    /// The `index`th socket (0 is fd 3).
    case index(Int)
    /// The socket whose name in `LISTEN_FDNAMES` is this.
    case name(String)
  }

  /// The default listen backlog.
  public static let defaultBacklog = 511

  /// Parses `description` (see the table above). Throws ``EndpointError`` naming the bad part.
  public init(_ description: String) throws(EndpointError) {
    let parts = try EndpointDescription(description)
    func port(_ bound: [String: String]) throws(EndpointError) -> Int {
      try parts.integer("port", bound["port"]!, in: 0...65535)
    }
    func backlog(_ bound: [String: String]) throws(EndpointError) -> Int {
      try bound["backlog"].map { value throws(EndpointError) in try parts.integer("backlog", value, in: 1...65535) }
        ?? Self.defaultBacklog
    }
    switch parts.type {
    case "tcp", "tcp6":
      let bound = try parts.bind(["port", "interface", "backlog"], required: ["port"])
      let interface = bound["interface"] ?? (parts.type == "tcp6" ? "::" : "")
      self =
        parts.type == "tcp"
        ? .tcp(port: try port(bound), interface: interface, backlog: try backlog(bound))
        : .tcp6(port: try port(bound), interface: interface, backlog: try backlog(bound))
    case "unix":
      let bound = try parts.bind(["address", "mode", "backlog"], required: ["address"])
      var mode: UInt32 = 0o666
      if let text = bound["mode"] {
        guard let parsed = UInt32(text, radix: 8), parsed <= 0o7777 else {
          throw EndpointError(description, part: "mode=\(text)", problem: "mode must be octal permissions, like 660")
        }
        mode = parsed
      }
      guard let path = bound["address"], !path.isEmpty else {
        throw EndpointError(description, part: "unix", problem: "unix needs a socket path")
      }
      self = .unix(path: path, mode: mode, backlog: try backlog(bound))
    case "ssl":
      let bound = try parts.bind(
        ["port", "privateKey", "certKey", "extraCertChain", "interface", "backlog"], required: ["port"])
      let key = bound["privateKey"] ?? "server.pem"
      self = .ssl(
        port: try port(bound), interface: bound["interface"] ?? "", backlog: try backlog(bound), privateKey: key,
        certKey: bound["certKey"] ?? key, extraCertChain: bound["extraCertChain"])
    case "udp":
      let bound = try parts.bind(["port", "interface"], required: ["port"])
      self = .udp(port: try port(bound), interface: bound["interface"] ?? "")
    case "systemd":
      let bound = try parts.bind(["domain", "index", "name"], required: ["domain"])
      guard let domain = SystemdDomain(rawValue: bound["domain"]!) else {
        throw EndpointError(
          description, part: "domain=\(bound["domain"]!)", problem: "domain must be INET, INET6 or UNIX")
      }
      switch (bound["index"], bound["name"]) {
      case (let index?, nil):
        self = .systemd(domain: domain, socket: .index(try parts.integer("index", index, in: 0...65535)))
      case (nil, let name?):
        self = .systemd(domain: domain, socket: .name(name))
      default:
        throw EndpointError(description, part: "systemd", problem: "systemd needs index=N or name=NAME (one of them)")
      }
    case "haproxy":
      guard !parts.rest.isEmpty else {
        throw EndpointError(
          description, part: "haproxy", problem: "haproxy needs an endpoint to wrap, as haproxy:tcp:8025")
      }
      let inner: ServerEndpoint
      do {
        inner = try ServerEndpoint(parts.rest)
      } catch {
        throw EndpointError(description, part: error.part, problem: error.problem)
      }
      switch inner {
      case .udp: throw EndpointError(description, part: "udp", problem: "haproxy wraps stream endpoints only")
      case .haproxy: throw EndpointError(description, part: "haproxy", problem: "haproxy cannot wrap haproxy")
      default: self = .haproxy(inner)
      }
    default:
      throw EndpointError(
        description, part: parts.type,
        problem: "unknown endpoint type (tcp, tcp6, unix, ssl, udp, systemd, haproxy)")
    }
  }

  /// The endpoint in its string form, with special characters escaped (parses back to itself).
  public var description: String {
    func escape(_ text: String) -> String {
      var escaped = ""
      for character in text {
        if character == ":" || character == "=" || character == "\\" { escaped.append("\\") }
        escaped.append(character)
      }
      return escaped
    }
    func common(_ interface: String, _ defaultInterface: String, _ backlog: Int) -> String {
      (interface == defaultInterface ? "" : ":interface=\(escape(interface))")
        + (backlog == Self.defaultBacklog ? "" : ":backlog=\(backlog)")
    }
    switch self {
    case .tcp(let port, let interface, let backlog): return "tcp:\(port)" + common(interface, "", backlog)
    case .tcp6(let port, let interface, let backlog): return "tcp6:\(port)" + common(interface, "::", backlog)
    case .unix(let path, let mode, let backlog):
      return "unix:\(escape(path))" + (mode == 0o666 ? "" : ":mode=\(String(mode, radix: 8))")
        + (backlog == Self.defaultBacklog ? "" : ":backlog=\(backlog)")
    case .ssl(let port, let interface, let backlog, let key, let cert, let chain):
      return "ssl:\(port):privateKey=\(escape(key))" + (cert == key ? "" : ":certKey=\(escape(cert))")
        + (chain.map { ":extraCertChain=\(escape($0))" } ?? "") + common(interface, "", backlog)
    case .udp(let port, let interface):
      return "udp:\(port)" + (interface.isEmpty ? "" : ":interface=\(escape(interface))")
    case .systemd(let domain, .index(let index)): return "systemd:domain=\(domain.rawValue):index=\(index)"
    case .systemd(let domain, .name(let name)): return "systemd:domain=\(domain.rawValue):name=\(escape(name))"
    case .haproxy(let inner): return "haproxy:\(inner)"
    }
  }
}

/// Parses a server endpoint string (Twisted's `serverFromString`, without the reactor:
/// `reactor.listen(endpoint, factory:)` serves it). Throws ``EndpointError``.
public func serverFromString(_ description: String) throws(EndpointError) -> ServerEndpoint {
  try ServerEndpoint(description)
}
