import CLibevent
import Glibc

/// Zero-downtime restart, the successor's side: take over a running server's listening
/// sockets through its ``ControlSocket``.
extension Reactor {
  /// Takes over the listening sockets of the server whose control socket is at `path`
  /// (``listenControl(_:mode:onTakeover:)``) and serves them with `factory` (over TLS
  /// with `tls`), then tells that server to drain: from then on this process accepts
  /// every new connection, and the old one finishes its own and exits. No connection is
  /// refused or reset on the way: both processes hold the same sockets, and the kernel
  /// keeps queueing connections on them throughout.
  ///
  /// Blocks for the conversation (a few milliseconds; at most `timeout` seconds per
  /// step): call it before ``run()``. The ports come back in the old server's order
  /// (by address), listening; a UNIX-domain socket's file becomes this process's to
  /// remove when its port stops. Nothing is taken over when this throws
  /// ``TwineError/takeover(_:)`` (the control socket cannot be reached, it answered with
  /// an error, or a socket could not be adopted): the old server keeps serving as before.
  /// After ``shutdown()`` it throws ``TwineError/reactorShutDown``.
  ///
  /// ```swift
  /// let ports = try reactor.takeOverListeningSockets(from: "/run/echo.control", factory: Factory(Echo.self))
  /// for port in ports { print("listening on \(port.address)") }
  /// ```
  @discardableResult
  public func takeOverListeningSockets(
    from path: String, factory: Factory, tls: TLSOptions? = nil, timeout: Double = 10
  ) throws(TwineError) -> [ListeningPort] {
    try admit("takeOverListeningSockets")
    let started = now
    let control = try ControlClient(path: path, timeout: timeout)
    defer { control.close() }
    let fds = try control.receiveSockets()
    var ports: [ListeningPort] = []
    do throws(TwineError) {
      for fd in fds { ports.append(try adoptListeningSocket(fd, factory: factory, tls: tls)) }
    } catch {
      for port in ports { port.stopListening() }  // our copies only: the old server's stay open
      for fd in fds.dropFirst(ports.count) { Glibc.close(fd) }
      throw .takeover("cannot serve the sockets of \(path): \(error)")
    }
    for port in ports { port.claimSocketFile() }
    // The sockets are ours and accepting: the old server may stop now.
    do throws(TwineError) {
      try control.askToDrain()
      logger.info(
        "took over the listening sockets",
        metadata: ["sockets": "\(ports.count)", "ms": "\(((now - started) * 1e4).rounded() / 10)"])
    } catch {
      logger.warning("took over the listening sockets, but the old server did not confirm its drain: \(error)")
    }
    return ports
  }
}

extension ListeningPort {
  /// A UNIX-domain port taken over: its socket file (if it is still there) is this port's to remove.
  func claimSocketFile() {
    guard case .unix(let path) = address.kind, !path.isEmpty, !path.hasPrefix("\0") else { return }
    var info = stat()
    guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else { return }
    socketFile = SocketFile(path: path, device: UInt(info.st_dev), inode: UInt(info.st_ino))
  }
}

/// The successor's end of a control-socket conversation: a blocking UNIX-domain socket with deadlines.
private struct ControlClient {
  let fd: Int32
  let path: String

  init(path: String, timeout: Double) throws(TwineError) {
    self.path = path
    guard let address = NumericAddress(SocketAddress(.unix(path: path), port: 0)) else {
      throw .takeover("not a usable control socket path: \(path)")
    }
    let made = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
    guard made >= 0 else { throw .takeover("socket: \(SocketError.from(code: errno).message)") }
    fd = made
    var limit = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    do throws(SocketError) {
      try Syscall.connect(fd, address)
    } catch {
      close()
      throw .takeover("cannot reach the control socket \(path): \(error.message)")
    }
  }

  func close() { Glibc.close(fd) }

  /// Sends `line` and a newline.
  func send(_ line: String) throws(TwineError) {
    let bytes = Array((line + "\n").utf8)
    let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    guard sent == bytes.count else {
      throw .takeover("cannot write to the control socket \(path): \(SocketError.from(code: errno).message)")
    }
  }

  /// Asks for the listening sockets; returns them (close-on-exec, now ours).
  func receiveSockets() throws(TwineError) -> [Int32] {
    try send("takeover")
    let message: (bytes: [UInt8], fds: [Int32])?
    do throws(SocketError) {
      message = try FDPassing.receive(fd)
    } catch {
      throw .takeover("no answer from the control socket \(path): \(error.message)")
    }
    guard let message else { throw .takeover("the control socket \(path) closed without answering") }
    let text = String(decoding: message.bytes, as: UTF8.self).trimmingCharacters(in: "\n")
    guard text == "sockets \(message.fds.count)", !message.fds.isEmpty else {
      for fd in message.fds { Glibc.close(fd) }
      throw .takeover("the server at \(path) answered: \(text)")
    }
    return message.fds
  }

  /// Asks the old server to drain and waits for its `draining`.
  func askToDrain() throws(TwineError) {
    try send("drain")
    var answer: [UInt8] = []
    var byte: UInt8 = 0
    while !answer.contains(UInt8(ascii: "\n")) {
      let got = Glibc.recv(fd, &byte, 1, 0)
      if got < 0 && errno == EINTR { continue }
      guard got == 1 else { break }
      answer.append(byte)
    }
    let text = String(decoding: answer, as: UTF8.self).trimmingCharacters(in: "\n")
    guard text == "draining" else { throw .takeover("the server at \(path) answered: \(text)") }
  }
}

extension String {
  /// Without `character` at either end.
  fileprivate func trimmingCharacters(in character: Character) -> String {
    String(drop { $0 == character }.reversed().drop { $0 == character }.reversed())
  }
}
