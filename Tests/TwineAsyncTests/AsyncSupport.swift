import Foundation
import Glibc
import Synchronization
import Testing
import TwineAsync

/// A value tests share between tasks and threads.
final class Shared<T: Sendable>: Sendable {
  private let state: Mutex<T>
  init(_ value: T) { state = Mutex(value) }
  var value: T {
    get { state.withLock { $0 } }
    set { state.withLock { $0 = newValue } }
  }
  func update<R>(_ body: (inout T) -> R) -> R { state.withLock { body(&$0) } }
}

/// Runs `main` on a fresh reactor (`react`), failing the test if it takes longer than `timeout` seconds.
///
/// The reactor's loop runs on a thread of its own, not on the test's: it blocks its thread until
/// `main` returns, and a test blocking a thread of Swift's cooperative pool (2 on a 2-core
/// machine) can starve the tasks another test needs a pool thread for (a full parallel run did).
func reacting<T: Sendable>(
  timeout: Double = 60, sourceLocation: SourceLocation = #_sourceLocation,
  _ main: sending @escaping (AsyncReactor) async throws -> T
) async throws -> T {
  let handoff = Handoff(main)
  let (result, timedOut) = await withCheckedContinuation {
    (continuation: CheckedContinuation<(Result<T, any Error>, Bool), Never>) in
    Thread {
      var timedOut = false
      let result = Result { () throws -> T in
        let reactor = try Reactor()
        let guardCall = reactor.callLater(timeout) {
          timedOut = true
          reactor.stop()
        }
        defer { guardCall.cancel() }
        return try reactor.react(handoff.take())
      }
      continuation.resume(returning: (result, timedOut))
    }.start()
  }
  #expect(!timedOut, "reactor timed out after \(timeout) s", sourceLocation: sourceLocation)
  return try result.get()
}

/// Carries `reacting`'s closure to the loop's thread. Unchecked Sendable: the closure was
/// passed `sending` (no one else holds it), and exactly one thread takes it, once.
private final class Handoff<Body>: @unchecked Sendable {
  private var body: Body?
  init(_ body: Body) { self.body = body }
  func take() -> Body {
    defer { body = nil }
    return body!
  }
}

/// Deterministic bytes that differ per `seed`.
func pattern(_ count: Int, seed: UInt8 = 0) -> [UInt8] {
  (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8 &+ Int(seed)) }
}

/// Reads `connection.inbound` until `count` bytes arrived (or it ended).
func read(_ connection: AsyncConnection, count: Int) async throws -> [UInt8] {
  var got: [UInt8] = []
  for try await chunk in connection.inbound {
    got += chunk
    if got.count >= count { break }
  }
  return got
}

/// Everything until the end of stream.
func readAll(_ connection: AsyncConnection) async throws -> [UInt8] {
  var got: [UInt8] = []
  for try await chunk in connection.inbound { got += chunk }
  return got
}

/// The process's resident set, in bytes.
func residentBytes() -> Int {
  guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
  let fields = text.split(separator: " ")
  guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
  return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// A blocking TCP socket to 127.0.0.1:`port`, driven from a thread of its own.
final class BlockingPeer: Sendable {
  let fd: Int32

  init(port: Int) {
    fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    precondition(connected == 0, "connect: \(errno)")
  }

  /// Sends timeouts after `seconds` (a send that cannot proceed returns what it sent).
  func setSendTimeout(_ seconds: Int) {
    var tv = timeval(tv_sec: seconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
  }

  /// Sends up to `count` bytes in 64 KiB pieces; stops at a timeout or error. Returns the bytes sent.
  func send(count: Int, progress: Shared<Int>? = nil) -> Int {
    let piece = [UInt8](repeating: 0x61, count: 64 << 10)
    var sent = 0
    while sent < count {
      let n = piece.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, min($0.count, count - sent), Int32(MSG_NOSIGNAL)) }
      if n <= 0 { break }
      sent += n
      progress?.value = sent
    }
    return sent
  }

  /// Reads until end of stream or `limit` bytes; returns the bytes read.
  func drain(limit: Int = .max) -> Int {
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    var total = 0
    while total < limit {
      let n = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
      if n <= 0 { break }
      total += n
    }
    return total
  }

  func close() { Glibc.close(fd) }
}

/// Runs `body` on a new thread.
func onThread(_ body: @escaping @Sendable () -> Void) {
  let thread = Thread(block: body)
  thread.stackSize = 1 << 20
  thread.start()
}
