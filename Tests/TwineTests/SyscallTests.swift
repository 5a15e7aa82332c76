import CLibevent
import Glibc
import Testing

@testable import Twine

/// Expects `body` to throw a ``SocketError`` carrying errno `code`.
private func expectErrno(
  _ code: Int32, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
  do {
    try body()
    Issue.record("no error; expected errno \(code)", sourceLocation: sourceLocation)
  } catch let error as SocketError {
    #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    #expect(error.message == String(cString: strerror(code)), sourceLocation: sourceLocation)
  } catch {
    Issue.record("not a SocketError: \(error)", sourceLocation: sourceLocation)
  }
}

/// A connected pair of UNIX-domain stream sockets, non-blocking.
private func streamPair() throws -> (Int32, Int32) {
  var pair: [Int32] = [-1, -1]
  guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue), 0, &pair) == 0 else {
    throw SocketError.from(code: errno)
  }
  return (pair[0], pair[1])
}

/// A descriptor that is not a socket (a pipe's read end) and its other end.
private func pipeEnds() -> (Int32, Int32) {
  var ends: [Int32] = [-1, -1]
  _ = pipe(&ends)
  return (ends[0], ends[1])
}

/// A descriptor number no process can have open (far above any descriptor limit): a
/// just-closed number could be reused at once by a test running in parallel.
private let closedDescriptor = Int32.max - 1

/// The error paths of the socket wrappers (Syscall.swift): each throws the errno of its own call.
@Suite("Syscall wrappers")
struct SyscallTests {
  @Test("socket() is always non-blocking and close-on-exec")
  func socketFlags() throws {
    for type in [Syscall.SocketType.stream, .datagram] {
      let fd = try Syscall.socket(AF_INET, type)
      defer { try? Syscall.close(fd) }
      #expect(fcntl(fd, F_GETFL) & O_NONBLOCK != 0)
      #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
    }
    expectErrno(EAFNOSUPPORT) { _ = try Syscall.socket(12345, .stream) }
  }

  @Test("a closed descriptor gives EBADF from every wrapper")
  func closedDescriptorIsEBADF() throws {
    let fd = closedDescriptor
    var buffer = [UInt8](repeating: 0, count: 16)
    expectErrno(EBADF) { _ = try buffer.withUnsafeMutableBytes { (b) throws(SocketError) in try Syscall.recv(fd, b) } }
    expectErrno(EBADF) { _ = try buffer.withUnsafeBytes { (b) throws(SocketError) in try Syscall.send(fd, b) } }
    expectErrno(EBADF) { try Syscall.close(fd) }
    expectErrno(EBADF) { try Syscall.shutdown(fd, SHUT_WR) }
    expectErrno(EBADF) { try Syscall.listen(fd, backlog: 1) }
    expectErrno(EBADF) { _ = try Syscall.accept(fd) }
    expectErrno(EBADF) { _ = try Syscall.localAddress(fd) }
    expectErrno(EBADF) { _ = try Syscall.peerAddress(fd) }
    expectErrno(EBADF) { try Syscall.setOption(fd, SOL_SOCKET, SO_KEEPALIVE, true) }
    expectErrno(EBADF) { try Syscall.setNonBlocking(fd) }
    expectErrno(EBADF) { try Syscall.bind(fd, NumericAddress(host: "127.0.0.1", port: 0)!) }
    expectErrno(EBADF) { try Syscall.connect(fd, NumericAddress(host: "127.0.0.1", port: 9)!) }
    expectErrno(EBADF) {
      _ = try buffer.withUnsafeBytes { (b) throws(SocketError) in
        try Syscall.sendTo(fd, b, to: NumericAddress(host: "127.0.0.1", port: 9)!)
      }
    }
  }

  @Test("socket options on a descriptor that is not a socket give ENOTSOCK")
  func notASocket() throws {
    let (readEnd, writeEnd) = pipeEnds()
    defer {
      close(readEnd)
      close(writeEnd)
    }
    expectErrno(ENOTSOCK) { try Syscall.setOption(readEnd, Int32(IPPROTO_TCP), TCP_NODELAY, true) }
    var type: Int32 = 0
    expectErrno(ENOTSOCK) { try Syscall.getOption(readEnd, SOL_SOCKET, SO_TYPE, into: &type) }
    expectErrno(ENOTSOCK) { _ = try Syscall.peerAddress(readEnd) }
    expectErrno(ENOTSOCK) { try Syscall.shutdown(readEnd, SHUT_WR) }
  }

  @Test("recv and send: bytes, nil for EAGAIN, 0 at end of stream")
  func recvSend() throws {
    let (a, b) = try streamPair()
    defer {
      close(a)
      close(b)
    }
    var buffer = [UInt8](repeating: 0, count: 16)
    #expect(try buffer.withUnsafeMutableBytes { (raw) throws(SocketError) in try Syscall.recv(a, raw) } == nil)
    let sent = try Array("hello".utf8).withUnsafeBytes { (raw) throws(SocketError) in try Syscall.send(b, raw) }
    #expect(sent == 5)
    let got = try buffer.withUnsafeMutableBytes { (raw) throws(SocketError) in try Syscall.recv(a, raw) }
    #expect(got == 5 && Array(buffer[..<5]) == Array("hello".utf8))
    try Syscall.shutdown(b, SHUT_WR)
    #expect(try buffer.withUnsafeMutableBytes { (raw) throws(SocketError) in try Syscall.recv(a, raw) } == 0)
    // A full send buffer: nil, not an error.
    let chunk = [UInt8](repeating: 7, count: 65536)
    var full = false
    for _ in 0..<1000 where !full {
      full = try chunk.withUnsafeBytes { (raw) throws(SocketError) in try Syscall.send(a, raw) } == nil
    }
    #expect(full)
    close(b)
    expectErrno(EPIPE) { _ = try chunk.withUnsafeBytes { (raw) throws(SocketError) in try Syscall.send(a, raw) } }
  }

  @Test("bind to a port in use gives EADDRINUSE; accept gives nil, then the connection")
  func bindListenAccept() throws {
    let server = try Syscall.socket(AF_INET, .stream)
    defer { try? Syscall.close(server) }
    try Syscall.bind(server, NumericAddress(host: "127.0.0.1", port: 0)!)
    try Syscall.listen(server, backlog: 4)
    let address = try Syscall.localAddress(server)
    let other = try Syscall.socket(AF_INET, .stream)
    defer { try? Syscall.close(other) }
    expectErrno(EADDRINUSE) { try Syscall.bind(other, NumericAddress(host: "127.0.0.1", port: address.port)!) }
    #expect(try Syscall.accept(server) == nil)
    expectErrno(ENOTCONN) { _ = try Syscall.peerAddress(other) }
    expectErrno(ENOTCONN) { try Syscall.shutdown(other, SHUT_WR) }
    _ = try Syscall.connect(other, NumericAddress(host: "127.0.0.1", port: address.port)!)
    var accepted: Int32?
    for _ in 0..<1000 where accepted == nil {
      accepted = try Syscall.accept(server)
      if accepted == nil { usleep(1000) }
    }
    let fd = try #require(accepted)
    defer { try? Syscall.close(fd) }
    #expect(fcntl(fd, F_GETFL) & O_NONBLOCK != 0 && fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
    #expect(try Syscall.peerAddress(fd) == Syscall.localAddress(other))
    var type: Int32 = 0
    #expect(try Syscall.getOption(fd, SOL_SOCKET, SO_TYPE, into: &type) == 4 && type == Int32(SOCK_STREAM.rawValue))
  }

  @Test("connect to a missing UNIX-domain path gives ENOENT")
  func connectMissingPath() throws {
    let fd = try Syscall.socket(AF_UNIX, .stream)
    defer { try? Syscall.close(fd) }
    let address = try #require(NumericAddress(SocketAddress(.unix(path: "/tmp/twine-no-such.sock"), port: 0)))
    expectErrno(ENOENT) { try Syscall.connect(fd, address) }
  }

  @Test("recvFrom and sendTo carry a datagram and its sender; nil when none waits")
  func datagrams() throws {
    let a = try Syscall.socket(AF_INET, .datagram)
    let b = try Syscall.socket(AF_INET, .datagram)
    defer {
      try? Syscall.close(a)
      try? Syscall.close(b)
    }
    try Syscall.bind(a, NumericAddress(host: "127.0.0.1", port: 0)!)
    try Syscall.bind(b, NumericAddress(host: "127.0.0.1", port: 0)!)
    let to = try #require(NumericAddress(try Syscall.localAddress(a)))
    var buffer = [UInt8](repeating: 0, count: 64)
    var storage = sockaddr_storage()
    func receive() throws -> Int? {
      var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
      return try withUnsafeMutablePointer(to: &storage) { pointer in
        try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
          try buffer.withUnsafeMutableBytes { raw in try Syscall.recvFrom(a, raw, sa, &length) }
        }
      }
    }
    #expect(try receive() == nil)
    let sent = try Array("ping".utf8).withUnsafeBytes { (raw) throws(SocketError) in try Syscall.sendTo(b, raw, to: to)
    }
    #expect(sent == 4)
    var got: Int?
    for _ in 0..<1000 where got == nil {
      got = try receive()
      if got == nil { usleep(1000) }
    }
    #expect(got == 4 && Array(buffer[..<4]) == Array("ping".utf8))
    let sender = withUnsafePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress($0, length: MemoryLayout<sockaddr_in>.size) }
    }
    #expect(try sender == Syscall.localAddress(b))
  }

  @Test("setNonBlocking sets O_NONBLOCK on a descriptor someone else made")
  func nonBlocking() throws {
    let (readEnd, writeEnd) = pipeEnds()
    defer {
      close(readEnd)
      close(writeEnd)
    }
    try Syscall.setNonBlocking(readEnd)
    #expect(fcntl(readEnd, F_GETFL) & O_NONBLOCK != 0)
  }
}
