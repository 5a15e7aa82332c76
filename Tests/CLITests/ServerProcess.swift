// Helpers for running the real `twine` executable and talking to it over loopback:
// spawning (stdout and stderr go to temporary files, so no pipe can fill up and
// deadlock), waiting with timeouts, a small blocking TCP client with deadlines,
// and CPU-time sampling from /proc. Every wait here is bounded.

import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A helper failed; the text says what was seen.
struct HarnessError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}

/// Generous bounds, for a loaded 2-core machine and the AddressSanitizer build.
enum Timeouts {
  /// Until the `listening on` line.
  static let startup = 60.0
  /// Until a process exits after a signal, or a one-shot command finishes.
  static let exit = 30.0
  /// Until one socket operation or client program completes.
  static let io = 20.0
}

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Blocks the calling thread for `seconds`.
func pause(_ seconds: Double) {
  usleep(useconds_t(seconds * 1_000_000))
}

/// Polls `condition` every 10 ms until it holds (true) or `timeout` passes (false).
func waitUntil(timeout: Double, _ condition: () throws -> Bool) rethrows -> Bool {
  let end = monotonicSeconds() + timeout
  while true {
    if try condition() { return true }
    if monotonicSeconds() > end { return false }
    pause(0.01)
  }
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit; returns the soft limit now in force.
@discardableResult
func raiseOpenFileLimit() -> Int {
  let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
  var limit = rlimit()
  guard getrlimit(resource, &limit) == 0 else { return 0 }
  if limit.rlim_cur < limit.rlim_max {
    var raised = limit
    raised.rlim_cur = limit.rlim_max
    if setrlimit(resource, &raised) == 0 { limit = raised }
  }
  return limit.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
}

/// The whole content of `path`, read with plain read(2) (works for /proc files too).
func readWholeFile(_ path: String) -> [UInt8] {
  let fd = open(path, O_RDONLY | O_CLOEXEC)
  guard fd >= 0 else { return [] }
  defer { close(fd) }
  var bytes: [UInt8] = []
  var chunk = [UInt8](repeating: 0, count: 65536)
  while true {
    let got = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    if got > 0 {
      bytes += chunk[0..<got]
    } else if got < 0 && errno == EINTR {
      continue
    } else {
      return bytes
    }
  }
}

/// CPU time (user + system) process `pid` has used so far, in seconds, from /proc/PID/stat.
func cpuSeconds(of pid: Int32) throws -> Double {
  let text = String(decoding: readWholeFile("/proc/\(pid)/stat"), as: UTF8.self)
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
  guard let close = text.lastIndex(of: ")") else { throw HarnessError("cannot read /proc/\(pid)/stat") }
  let fields = text[text.index(after: close)...].split(separator: " ")
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  guard fields.count > 12, let utime = Double(fields[11]), let stime = Double(fields[12]) else {
    throw HarnessError("unexpected /proc/\(pid)/stat: \(text)")
  }
  return (utime + stime) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// The path of program `name`, from PATH or the usual system folders.
func findProgram(_ name: String) throws -> String {
  let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
  let folders = path.split(separator: ":").map(String.init) + ["/usr/local/bin", "/usr/bin", "/bin"]
  for folder in folders where !folder.isEmpty {
    let candidate = folder + "/" + name
    if access(candidate, X_OK) == 0 { return candidate }
  }
  throw HarnessError("\(name) not found in PATH or /usr/bin (the Makefile's deps-test installs it)")
}

/// The `twine` executable under test.
enum TwineExecutable {
  /// `twine` in the folder of the test runner (`.build/debug` or `.build-asan/debug`),
  /// or `$TWINE_EXECUTABLE` when set.
  static func path() throws -> String {
    if let given = ProcessInfo.processInfo.environment["TWINE_EXECUTABLE"], !given.isEmpty {
      guard isExecutableFile(given) else { throw HarnessError("TWINE_EXECUTABLE=\(given) is not an executable file") }
      return given
    }
    var folders: [String] = []
    if let runner = CommandLine.arguments.first, !runner.isEmpty {
      folders.append(URL(fileURLWithPath: runner).deletingLastPathComponent().standardizedFileURL.path)
    }
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
      folders.append(URL(fileURLWithPath: exe).deletingLastPathComponent().path)
    }
    for folder in folders {
      let candidate = folder + "/twine"
      if isExecutableFile(candidate) { return candidate }
    }
    throw HarnessError(
      "the twine executable is not next to the test runner (looked in \(folders)); "
        + "build it with `swift build --build-tests` (add the same --sanitize/--scratch-path as `swift test`)")
  }

  private static func isExecutableFile(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && access(path, X_OK) == 0
  }
}

/// How a process ended.
enum Termination: Equatable, CustomStringConvertible {
  case exited(Int32)
  case signalled(Int32)

  var description: String {
    switch self {
    case .exited(let code): "exit status \(code)"
    case .signalled(let signal): "killed by signal \(signal)"
    }
  }

  var isFailure: Bool { self != .exited(0) }
}

/// A child process whose stdout and stderr go to temporary files.
///
/// Spawned with posix_spawn rather than Foundation's Process: the test runner's
/// threads block most signals (libdispatch's workers do), a spawned child inherits
/// the spawning thread's mask, and a twine started with SIGINT and SIGTERM blocked
/// would never see them. So the child starts with an empty mask and default actions,
/// as from a shell, and with no descriptor of this process but 0, 1 and 2.
final class ChildProcess {
  let pid: pid_t
  private let folder: URL
  private let stdoutPath: String
  private let stderrPath: String
  private var stdinFD: Int32 = -1
  private var termination: Termination?

  /// Starts `executable` with `arguments`. With `pipeStdin`, standard input is a pipe
  /// (write with ``writeToStdin(_:)``, then ``closeStdin()``); otherwise /dev/null.
  init(_ executable: String, _ arguments: [String], pipeStdin: Bool = false) throws {
    _ = ignoreSIGPIPE
    folder = FileManager.default.temporaryDirectory.appendingPathComponent("twine-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    stdoutPath = folder.appendingPathComponent("stdout").path
    stderrPath = folder.appendingPathComponent("stderr").path

    var pipeEnds: [Int32] = [-1, -1]
    if pipeStdin {
      // (pipe2 is not visible from Swift's Glibc module; our own children close
      // everything past 2 anyway, see closeFrom.)
      guard pipe(&pipeEnds) == 0 else { throw HarnessError("pipe: \(errorText(errno))") }
      for end in pipeEnds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if pipeStdin {
      posix_spawn_file_actions_adddup2(&actions, pipeEnds[0], 0)
    } else {
      posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    }
    posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    // Descriptors other code in this process left inheritable (libevent's client sockets
    // are not close-on-exec) must not keep connections open inside a server we start.
    if let closeFrom { _ = closeFrom(&actions, 3) }

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { for arg in argv { free(arg) } }
    var child: pid_t = 0
    let result = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
    if pipeStdin { Glibc.close(pipeEnds[0]) }
    guard result == 0 else {
      if pipeStdin { Glibc.close(pipeEnds[1]) }
      try? FileManager.default.removeItem(at: folder)
      throw HarnessError("cannot start \(executable): \(errorText(result))")
    }
    pid = child
    if pipeStdin {
      stdinFD = pipeEnds[1]
      _ = fcntl(stdinFD, F_SETFL, fcntl(stdinFD, F_GETFL) | O_NONBLOCK)
    }
  }

  deinit {
    kill()
    closeStdin()
    try? FileManager.default.removeItem(at: folder)
  }

  /// True until the process has exited and been reaped.
  var isRunning: Bool { reap() == nil }

  /// Everything written to stdout so far.
  var stdout: [UInt8] { readWholeFile(stdoutPath) }
  var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
  /// Everything written to stderr so far.
  var stderrText: String { String(decoding: readWholeFile(stderrPath), as: UTF8.self) }

  /// Writes all of `bytes` to the child's stdin pipe (SIGPIPE is ignored: a child gone early is an error).
  func writeToStdin(_ bytes: [UInt8], timeout: Double = Timeouts.io) throws {
    guard stdinFD >= 0 else { throw HarnessError("stdin is not an open pipe") }
    let end = monotonicSeconds() + timeout
    var offset = 0
    while offset < bytes.count {
      let written = bytes.withUnsafeBytes { Glibc.write(stdinFD, $0.baseAddress! + offset, $0.count - offset) }
      if written > 0 {
        offset += written
      } else if written < 0 && (errno == EAGAIN || errno == EINTR) {
        guard poll(stdinFD, events: Int16(POLLOUT), until: end) else {
          throw HarnessError("writing to the child's stdin timed out after \(offset) of \(bytes.count) bytes")
        }
      } else {
        throw HarnessError("writing to the child's stdin failed after \(offset) bytes: \(errorText(errno))")
      }
    }
  }

  func closeStdin() {
    if stdinFD >= 0 {
      Glibc.close(stdinFD)
      stdinFD = -1
    }
  }

  /// Sends `signal` unless the process has been reaped (a zombie keeps its PID, so this never hits another process).
  func send(_ signal: Int32) {
    if reap() == nil { Glibc.kill(pid, signal) }
  }

  /// How the process ended, or nil if it still runs after `timeout` seconds.
  func waitForExit(timeout: Double = Timeouts.exit) -> Termination? {
    _ = waitUntil(timeout: timeout) { reap() != nil }
    return reap()
  }

  /// Kills the process with SIGKILL if it still runs, and reaps it. Idempotent.
  func kill() {
    guard reap() == nil else { return }
    Glibc.kill(pid, SIGKILL)
    _ = waitForExit(timeout: Timeouts.exit)
  }

  /// Reaps the process if it has ended (without waiting); its termination once it has.
  private func reap() -> Termination? {
    if let termination { return termination }
    var status: Int32 = 0
    let result = waitpid(pid, &status, WNOHANG)
    if result == pid {
      let signal = status & 0x7f
      termination = signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
    } else if result < 0 && errno == ECHILD {
      termination = .signalled(0)  // reaped elsewhere: unknown status, but gone
    }
    return termination
  }

  /// Runs `executable` to completion (killed and reported after `timeout`).
  static func run(
    _ executable: String, _ arguments: [String], stdin: [UInt8]? = nil, timeout: Double = Timeouts.exit
  ) throws -> (termination: Termination, stdout: [UInt8], stderr: String) {
    let child = try ChildProcess(executable, arguments, pipeStdin: stdin != nil)
    if let stdin {
      try child.writeToStdin(stdin, timeout: timeout)
      child.closeStdin()
    }
    guard let termination = child.waitForExit(timeout: timeout) else {
      child.kill()
      throw HarnessError(
        "\(executable) \(arguments) did not finish in \(timeout) s; stderr: \(child.stderrText)")
    }
    return (termination, child.stdout, child.stderrText)
  }
}

/// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which Swift's Glibc
/// module does not show (it is declared for _GNU_SOURCE only).
private let closeFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
  guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
    return nil
  }
  return unsafeBitCast(
    symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
}()

/// Ignores SIGPIPE in this process once (as Twine's Reactor does too), so that writing
/// to a pipe whose reader is gone fails with EPIPE instead of killing the test runner.
private let ignoreSIGPIPE: Void = {
  signal(SIGPIPE, SIG_IGN)
}()

/// A running `twine` server: started, and its `listening on` line read.
final class TwineServer {
  let child: ChildProcess
  /// The address from the `listening on HOST:PORT` line.
  let address: String
  /// The port from that line.
  let port: Int

  /// Starts `twine arguments...` and waits for its `listening on` line. With
  /// `openFileLimit`, the server runs with RLIMIT_NOFILE lowered to that many.
  init(_ arguments: [String], openFileLimit: Int? = nil) throws {
    let twine = try TwineExecutable.path()
    let child: ChildProcess
    if let openFileLimit {
      // sh lowers its soft and hard limit, then execs twine (same PID).
      child = try ChildProcess(
        "/bin/sh", ["-c", "ulimit -n \(openFileLimit) && exec \"$0\" \"$@\"", twine] + arguments)
    } else {
      child = try ChildProcess(twine, arguments)
    }
    var line: String?
    _ = waitUntil(timeout: Timeouts.startup) {
      let out = child.stdoutText
      if let newline = out.firstIndex(of: "\n") {
        line = String(out[..<newline])
        return true
      }
      return !child.isRunning
    }
    guard let line else {
      let running = child.isRunning
      child.kill()
      throw HarnessError(
        "twine \(arguments) printed no `listening on` line "
          + (running ? "in \(Timeouts.startup) s" : "before exiting") + "; stderr: \(child.stderrText)")
    }
    let prefix = "listening on "
    guard line.hasPrefix(prefix), let colon = line.lastIndex(of: ":"),
      let port = Int(line[line.index(after: colon)...]),
      port > 0
    else {
      child.kill()
      throw HarnessError("unexpected first stdout line from twine \(arguments): \(line)")
    }
    self.child = child
    self.address = String(line.dropFirst(prefix.count))
    self.port = port
  }

  deinit { child.kill() }

  var pid: Int32 { child.pid }
  var isRunning: Bool { child.isRunning }
  var stdoutText: String { child.stdoutText }
  var stderrText: String { child.stderrText }

  func send(_ signal: Int32) { child.send(signal) }
  func waitForExit(timeout: Double = Timeouts.exit) -> Termination? { child.waitForExit(timeout: timeout) }
  /// SIGKILL if still running; for `defer`, so a failing test leaves no server behind.
  func kill() { child.kill() }
}

/// How a connection's reading side ended.
enum StreamEnd: Equatable {
  /// An orderly close (FIN).
  case eof
  /// A reset (ECONNRESET).
  case reset
}

/// A blocking-with-deadlines IPv4 TCP client on a non-blocking, close-on-exec socket.
final class TCPClient {
  private(set) var fd: Int32

  private init(fd: Int32) { self.fd = fd }

  deinit { close() }

  /// Connects to 127.0.0.1:`port`, retrying a refused connect until `timeout` passes.
  static func connect(port: Int, timeout: Double = Timeouts.io) throws -> TCPClient {
    let end = monotonicSeconds() + timeout
    while true {
      let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
      guard fd >= 0 else { throw HarnessError("socket(): \(errorText(errno))") }
      var address = sockaddr_in()
      address.sin_family = sa_family_t(AF_INET)
      address.sin_port = in_port_t(UInt16(port).bigEndian)
      address.sin_addr.s_addr = in_addr_t(UInt32(0x7f00_0001).bigEndian)
      let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
      }
      var code: Int32 = result == 0 ? 0 : errno
      if code == EINPROGRESS {
        if poll(fd, events: Int16(POLLOUT), until: end) {
          var length = socklen_t(MemoryLayout<Int32>.size)
          if getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) != 0 { code = errno }
        } else {
          code = ETIMEDOUT
        }
      }
      if code == 0 { return TCPClient(fd: fd) }
      Glibc.close(fd)
      if code == ECONNREFUSED && monotonicSeconds() < end {
        pause(0.05)
        continue
      }
      throw HarnessError("connect to 127.0.0.1:\(port) failed: \(errorText(code))")
    }
  }

  /// Sends every byte of `bytes`.
  func send(_ bytes: [UInt8], timeout: Double = Timeouts.io) throws {
    let end = monotonicSeconds() + timeout
    var offset = 0
    while offset < bytes.count {
      let sent = bytes.withUnsafeBytes {
        Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
      }
      if sent > 0 {
        offset += sent
      } else if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        guard poll(fd, events: Int16(POLLOUT), until: end) else {
          throw HarnessError("send timed out after \(offset) of \(bytes.count) bytes")
        }
      } else {
        throw HarnessError("send failed after \(offset) of \(bytes.count) bytes: \(errorText(errno))")
      }
    }
  }

  func send(_ text: String, timeout: Double = Timeouts.io) throws { try send(Array(text.utf8), timeout: timeout) }

  /// Reads exactly `count` bytes; throws on EOF, reset or timeout, showing what came.
  func read(count: Int, timeout: Double = Timeouts.io) throws -> [UInt8] {
    let end = monotonicSeconds() + timeout
    var bytes: [UInt8] = []
    while bytes.count < count {
      switch try readSome(max: count - bytes.count, until: end) {
      case .data(let chunk): bytes += chunk
      case .end(let how):
        throw HarnessError("connection ended (\(how)) after \(bytes.count) of \(count) bytes: \(printable(bytes))")
      case .timedOut:
        throw HarnessError("read timed out after \(bytes.count) of \(count) bytes: \(printable(bytes))")
      }
    }
    return bytes
  }

  /// Reads until the peer closes; returns what came and how the stream ended.
  func readToEnd(timeout: Double = Timeouts.io) throws -> (bytes: [UInt8], end: StreamEnd) {
    let end = monotonicSeconds() + timeout
    var bytes: [UInt8] = []
    while true {
      switch try readSome(max: 65536, until: end) {
      case .data(let chunk): bytes += chunk
      case .end(let how): return (bytes, how)
      case .timedOut: throw HarnessError("no end of stream in \(timeout) s; got \(printable(bytes))")
      }
    }
  }

  /// Sends `text` and reads back as many bytes; returns them as text.
  func echo(_ text: String, timeout: Double = Timeouts.io) throws -> String {
    try send(text, timeout: timeout)
    return String(decoding: try read(count: text.utf8.count, timeout: timeout), as: UTF8.self)
  }

  /// Half-closes: the peer reads EOF, this side can still read.
  func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }

  func close() {
    if fd >= 0 {
      Glibc.close(fd)
      fd = -1
    }
  }

  /// True if the socket has something to read (data or end of stream) within `timeout`.
  func isReadable(timeout: Double) -> Bool {
    poll(fd, events: Int16(POLLIN), until: monotonicSeconds() + timeout)
  }

  private enum ReadResult {
    case data([UInt8])
    case end(StreamEnd)
    case timedOut
  }

  private func readSome(max: Int, until end: Double) throws -> ReadResult {
    var buffer = [UInt8](repeating: 0, count: max)
    while true {
      let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
      if got > 0 { return .data(Array(buffer[0..<got])) }
      if got == 0 { return .end(.eof) }
      let code = errno
      if code == ECONNRESET { return .end(.reset) }
      guard code == EAGAIN || code == EWOULDBLOCK || code == EINTR else {
        throw HarnessError("recv failed: \(errorText(code))")
      }
      guard poll(fd, events: Int16(POLLIN), until: end) else { return .timedOut }
    }
  }
}

/// Waits until `fd` has one of `events` (true) or `end` passes (false).
func poll(_ fd: Int32, events: Int16, until end: Double) -> Bool {
  while true {
    let left = max(0, end - monotonicSeconds())
    var entry = pollfd(fd: fd, events: events, revents: 0)
    let ready = Glibc.poll(&entry, 1, Int32(min(left * 1000, 1000).rounded(.up)))
    if ready > 0 { return true }
    if ready < 0 && errno != EINTR { return true }  // let the caller's next call report the error
    if left == 0 || monotonicSeconds() >= end { return false }
  }
}

func errorText(_ code: Int32) -> String { "\(String(cString: strerror(code))) (errno \(code))" }

/// Bytes as text for messages, with \r and \n visible.
func printable(_ bytes: [UInt8]) -> String {
  String(decoding: bytes, as: UTF8.self).debugDescription
}

/// A listening IPv4 socket of this test process on 127.0.0.1 (port 0 picks one), to occupy a port.
final class PlainListener {
  let fd: Int32
  let port: Int

  init(listen: Bool = true) throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket(): \(errorText(errno))") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = in_addr_t(UInt32(0x7f00_0001).bigEndian)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
        bind(fd, sa, length) == 0 && getsockname(fd, sa, &length) == 0
      }
    }
    guard bound, !listen || Glibc.listen(fd, 16) == 0 else {
      let text = errorText(errno)
      Glibc.close(fd)
      throw HarnessError("cannot bind/listen a plain socket: \(text)")
    }
    self.fd = fd
    self.port = Int(UInt16(bigEndian: address.sin_port))
  }

  deinit { Glibc.close(fd) }
}
