import CLibevent
import Glibc
import LoopbackTestSupport

/// Plain blocking sockets made without Twine, as a host program would have them.
enum RawSockets {
  /// A connected TCP pair over loopback: `client` connected, `server` accepted (both blocking).
  static func connectedPair() -> (client: Int32, server: Int32)? {
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard listener >= 0 else { return nil }
    defer { close(listener) }
    guard let port = bindLoopback(listener), listen(listener, 4) == 0, let client = connect(port: port) else {
      return nil
    }
    let server = accept(listener, nil, nil)
    guard server >= 0 else {
      close(client)
      return nil
    }
    return (client, server)
  }

  /// A blocking TCP socket connected to 127.0.0.1:`port` (a loopback listener's backlog completes it).
  static func connect(port: Int) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = loopback(port: port)
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
      }
    }
    guard fd >= 0, connected else {
      if fd >= 0 { close(fd) }
      return nil
    }
    return fd
  }

  /// Binds `fd` to 127.0.0.1 on a free port and returns the port.
  static func bindLoopback(_ fd: Int32) -> Int? {
    var address = loopback(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
      }
    }
    return bound ? Int(UInt16(bigEndian: address.sin_port)) : nil
  }

  private static func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    return address
  }

  /// Which open file `fd` is (device and inode), or nil if `fd` is not open: tells a
  /// closed descriptor from one whose number was reused by another open.
  static func identity(_ fd: Int32) -> [UInt]? {
    var info = stat()
    guard fstat(fd, &info) == 0 else { return nil }
    return [UInt(info.st_dev), UInt(info.st_ino)]
  }

  /// Sends all of `bytes` on a blocking socket; false on error.
  static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
      let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
      guard sent > 0 else { return false }
      offset += sent
    }
    return true
  }

  /// Reads until `count` bytes came, the stream ended, or `timeout` seconds passed without data.
  static func receive(_ fd: Int32, count: Int, timeout: Double = 20) -> [UInt8] {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while bytes.count < count {
      var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      guard poll(&entry, 1, Int32(timeout * 1000)) == 1 else { break }
      let got = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, count - bytes.count), 0) }
      guard got > 0 else { break }
      bytes += chunk[0..<got]
    }
    return bytes
  }

  /// Sets a receive timeout on a blocking socket, so a test never hangs on a read.
  static func setReceiveTimeout(_ fd: Int32, seconds: Int) {
    var tv = timeval(tv_sec: seconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
  }
}

/// Runs `body` on a new thread; returns a handle to join.
func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
  final class Job: @unchecked Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
  }
  var thread = pthread_t()
  pthread_create(
    &thread, nil,
    { context in
      Unmanaged<Job>.fromOpaque(context!).takeRetainedValue().body()
      return nil
    }, Unmanaged.passRetained(Job(body)).toOpaque())
  return thread
}
