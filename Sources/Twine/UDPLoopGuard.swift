import Glibc

/// Tells whether a datagram comes from the UDP port that received it: from its own
/// address, or from any address of this host with the port's number. Answering such a
/// datagram sends the answer back to the port itself, so an echo would answer itself
/// forever; a single datagram with a forged source address is enough to start that.
///
/// "This host" is the loopback networks (127.0.0.0/8, ::1), the unspecified address
/// (the kernel sends to 0.0.0.0 and :: locally), the bound address and, for a port bound
/// to every interface, each interface's address (read with `getifaddrs`, at most once a
/// second, and only for a datagram whose source port is the port's own).
struct UDPLoopGuard {
  /// An IP host, with IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as IPv4 and the scope left out.
  enum Host: Hashable {
    case ipv4(UInt32)
    case ipv6(high: UInt64, low: UInt64)

    init?(_ kind: SocketAddress.Kind) {
      switch kind {
      case .ipv4(let value): self = .ipv4(value)
      case .ipv6(let high, let low, _) where high == 0 && low >> 32 == 0xffff:
        self = .ipv4(UInt32(truncatingIfNeeded: low))
      case .ipv6(let high, let low, _): self = .ipv6(high: high, low: low)
      case .unix: return nil
      }
    }

    /// 127.0.0.0/8 or ::1.
    var isLoopback: Bool {
      switch self {
      case .ipv4(let value): value >> 24 == 127
      case .ipv6(let high, let low): high == 0 && low == 1
      }
    }

    /// 0.0.0.0 or ::.
    var isUnspecified: Bool {
      switch self {
      case .ipv4(let value): value == 0
      case .ipv6(let high, let low): high == 0 && low == 0
      }
    }
  }

  /// The port's number.
  private let port: Int
  /// The bound host; unspecified for a port bound to every interface.
  private let bound: Host?
  /// This host's interface addresses, for a port bound to every interface.
  private var interfaces: Set<Host> = []
  /// When ``interfaces`` was read (seconds on the reactor's clock).
  private var interfacesReadAt = -Double.infinity

  /// A guard for a port bound to `address`.
  init(boundTo address: SocketAddress) {
    port = address.port
    bound = Host(address.kind)
  }

  /// True when `sender` is this port itself, or another address of this host with its port number.
  mutating func isFromSelf(_ sender: SocketAddress, now: @autoclosure () -> Double) -> Bool {
    guard sender.port == port, let host = Host(sender.kind) else { return false }
    if host.isLoopback || host.isUnspecified || host == bound { return true }
    // Bound to one address, the port hears nothing sent to another: no loop through it.
    guard bound?.isUnspecified ?? false else { return false }
    let time = now()
    if time - interfacesReadAt >= 1 {
      interfaces = Self.interfaceAddresses()
      interfacesReadAt = time
    }
    return interfaces.contains(host)
  }

  /// Every IPv4 and IPv6 address of this host's interfaces (empty if `getifaddrs` fails).
  static func interfaceAddresses() -> Set<Host> {
    var list: UnsafeMutablePointer<ifaddrs>?
    guard getifaddrs(&list) == 0 else { return [] }
    defer { freeifaddrs(list) }
    var hosts: Set<Host> = []
    var entry = list
    while let current = entry {
      if let address = current.pointee.ifa_addr,
        let socketAddress = SocketAddress(address, length: MemoryLayout<sockaddr_storage>.size),
        let host = Host(socketAddress.kind)
      {
        hosts.insert(host)
      }
      entry = current.pointee.ifa_next
    }
    return hosts
  }
}
