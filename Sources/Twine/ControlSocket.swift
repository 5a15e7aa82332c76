import CLibevent
import Glibc

/// A running server's control socket: a UNIX-domain socket on which a successor process
/// takes over the listening sockets (zero-downtime restart, like HAProxy's `-x`), and
/// where other one-line commands may be answered (``commands``).
///
/// The conversation, one line each way (a successor does it with
/// ``Reactor/takeOverListeningSockets(from:factory:tls:timeout:)``):
/// `takeover` → `sockets N` with the N listening sockets attached (`SCM_RIGHTS`);
/// `drain` → this process forgets the UNIX socket files it handed over (they are the
/// successor's now), stops listening on the control path, answers `draining`, then runs
/// ``onTakeover`` (which should drain and stop). Anything else: ``commands`` or
/// `error unknown command`. Only a process of the same user (or root) is answered.
public final class ControlSocket {
  /// The control socket's port; nil once it stopped listening.
  public fileprivate(set) weak var port: ListeningPort?
  /// Runs once a successor holds the listening sockets and asked this process to drain.
  public var onTakeover: () -> Void
  /// More commands: the line `name` runs `commands[name]`, whose result goes back as one line.
  public var commands: [String: () -> String] = [:]
  private weak var reactor: Reactor?

  fileprivate init(reactor: Reactor, onTakeover: @escaping () -> Void) {
    self.reactor = reactor
    self.onTakeover = onTakeover
  }

  /// Stops listening on the control path (its file is removed). Idempotent.
  public func stopListening() { port?.stopListening() }

  /// Attaches the listening ports' sockets to a `sockets N` line sent on `connection`;
  /// returns the ports sent, or the error line to answer.
  fileprivate func sendSockets(on connection: TCPConnection) -> Result<[ListeningPort], ControlError> {
    guard let reactor else { return .failure(ControlError("error the server is stopping")) }
    let ports = reactor.ports.values.filter { $0 !== port && $0.isListening }
      .sorted { $0.address.description < $1.address.description }
    let fds = ports.compactMap(\.fileDescriptor)
    guard !fds.isEmpty, fds.count <= FDPassing.maxFDs else {
      return .failure(
        ControlError(fds.isEmpty ? "error no listening sockets" : "error too many listening sockets (\(fds.count))"))
    }
    do throws(SocketError) {
      try FDPassing.send(connection.fd, Array("sockets \(fds.count)\n".utf8), fds: fds)
    } catch {
      reactor.logger.warning("cannot hand over the listening sockets", metadata: ["error": "\(error)"])
      return .failure(ControlError("error \(error.message)"))
    }
    reactor.logger.info("listening sockets sent to a successor", metadata: ["sockets": "\(fds.count)"])
    return .success(ports)
  }

  /// The successor holds `ports`: let go of their files, of the control path, then drain.
  fileprivate func handOver(_ ports: [ListeningPort], _ transport: any Transport) {
    for port in ports { port.socketFile = nil }  // the successor removes them now
    stopListening()
    transport.write(Array("draining\n".utf8))
    transport.loseConnection()
    reactor?.logger.info("taken over by a successor; draining")
    onTakeover()
  }
}

/// An error line a control command answers with.
private struct ControlError: Error {
  let line: String
  init(_ line: String) { self.line = line }
}

/// One connection to the control socket: reads lines, answers each.
private final class ControlProtocol: Protocol {
  private let control: ControlSocket
  private var line: [UInt8] = []
  /// The ports this connection's peer received (`takeover`): only it may ask for the drain.
  private var handedOver: [ListeningPort] = []

  init(_ control: ControlSocket) {
    self.control = control
    super.init()
  }

  required init() { fatalError("built by the control socket's factory") }

  override func connectionMade() {
    let uid = getuid()
    guard let peer = transport.peerCredentials, peer.uid == uid || peer.uid == 0 else {
      transport.write(Array("error not the same user\n".utf8))
      transport.loseConnection()
      return
    }
  }

  override func dataReceived(_ data: RawSpan) {
    data.withUnsafeBytes { bytes in
      for byte in bytes {
        guard transport.disconnecting == false else { return }
        if byte == UInt8(ascii: "\n") {
          let command = String(decoding: line, as: UTF8.self).trimmingSuffix("\r")
          line = []
          handle(command)
        } else if line.count < 256 {
          line.append(byte)
        }
      }
    }
  }

  private func handle(_ command: String) {
    switch command {
    case "takeover":
      guard let connection = transport as? TCPConnection else { return reply("error not a socket") }
      switch control.sendSockets(on: connection) {
      case .success(let ports): handedOver = ports
      case .failure(let error): reply(error.line)
      }
    case "drain":
      guard !handedOver.isEmpty else { return reply("error takeover first") }
      control.handOver(handedOver, transport)
      handedOver = []
    default:
      guard let body = control.commands[command] else { return reply("error unknown command: \(command)") }
      reply(body())
    }
  }

  private func reply(_ text: String) { transport.write(Array((text + "\n").utf8)) }
}

extension String {
  fileprivate func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast()) : self }
}

extension Reactor {
  /// Opens a control socket at `path` (file mode `mode`, the owner's only by default) on
  /// which a successor process can take over this reactor's listening sockets; see
  /// ``ControlSocket``. `onTakeover` runs once a successor holds them: drain there,
  /// and stop when drained.
  ///
  /// ```swift
  /// let control = try reactor.listenControl("/run/echo.control") {
  ///   reactor.drain(timeout: 10) { _ in reactor.stop() }
  /// }
  /// ```
  /// Throws like ``listenUNIX(_:factory:mode:backlog:)`` (a live server's control socket
  /// at `path` is left alone); after ``shutdown()``, ``TwineError/reactorShutDown``.
  public func listenControl(_ path: String, mode: mode_t = 0o600, onTakeover: @escaping () -> Void)
    throws(TwineError) -> ControlSocket
  {
    try admit("listenControl")
    let control = ControlSocket(reactor: self, onTakeover: onTakeover)
    // The factory keeps the control object; it keeps the port only weakly (no cycle).
    let factory = Factory { _ in ControlProtocol(control) }
    control.port = try listenUNIX(path, factory: factory, mode: mode, backlog: 8)
    return control
  }
}
