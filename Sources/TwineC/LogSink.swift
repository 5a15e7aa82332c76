import CTwineAPI
import Glibc
import Logging

/// Where a C host's reactor sends its log lines: held back at first, then the host's
/// callback, stderr, or nowhere. Changed and used only on the reactor's thread.
///
/// Lines logged before the host could set a callback (the SIGPIPE warning of
/// `twine_reactor_new`) are held: the first `twine_set_log_callback` receives them,
/// and if the loop starts (or the reactor is destroyed) with none set, they go to stderr.
final class LogSink: @unchecked Sendable {
  enum Target {
    case early
    case standardError
    case callback(twine_log_fn, UnsafeMutableRawPointer?)
    case discard
  }

  private(set) var target = Target.early
  /// Lines held while the target is `.early` (at most ``earlyLimit``).
  private var held: [(Logger.Level, String)] = []
  private static let earlyLimit = 64
  var minLevel = Logger.Level.warning
  /// True while the host's callback runs (it must not destroy the reactor from there).
  private(set) var emitting = false

  /// Sends lines to `target` from now on, the held ones first (those at `minLevel` or above).
  func redirect(to newTarget: Target) {
    target = newTarget
    let lines = held
    held = []
    for (level, line) in lines where level >= minLevel { emit(level, line) }
  }

  /// The loop ran (or the reactor is going): held lines go to stderr unless a callback was set.
  func loopStarted() {
    if case .early = target { redirect(to: .standardError) }
  }

  /// Delivers one formatted line.
  func emit(_ level: Logger.Level, _ line: String) {
    switch target {
    case .early:
      if held.count < Self.earlyLimit { held.append((level, line)) }
    case .standardError:
      var text = "twine: \(level): \(line)\n"
      text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    case .callback(let callback, let context):
      emitting = true
      defer { emitting = false }
      line.withCString { callback(level.cLevel, $0, context) }
    case .discard:
      break
    }
  }
}

/// The swift-log handler of a C host's reactor: formats `message key=value ...` and hands it to a ``LogSink``.
struct SinkLogHandler: LogHandler {
  let sink: LogSink
  var metadata: Logger.Metadata = [:]

  var logLevel: Logger.Level {
    get { sink.minLevel }
    set { sink.minLevel = newValue }
  }

  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  func log(event: LogEvent) {
    let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
    let pairs = all.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
    sink.emit(event.level, "\(event.message)\(pairs)")
  }
}

extension Logger.Level {
  /// The `twine_log_level` value.
  var cLevel: Int32 {
    switch self {
    case .trace: Int32(TWINE_LOG_TRACE.rawValue)
    case .debug: Int32(TWINE_LOG_DEBUG.rawValue)
    case .info: Int32(TWINE_LOG_INFO.rawValue)
    case .notice: Int32(TWINE_LOG_NOTICE.rawValue)
    case .warning: Int32(TWINE_LOG_WARNING.rawValue)
    case .error: Int32(TWINE_LOG_ERROR.rawValue)
    case .critical: Int32(TWINE_LOG_CRITICAL.rawValue)
    }
  }

  /// The level for a `twine_log_level` value; nil outside `TWINE_LOG_TRACE...TWINE_LOG_CRITICAL`.
  init?(cLevel: Int32) {
    let all: [Logger.Level] = [.trace, .debug, .info, .notice, .warning, .error, .critical]
    guard all.indices.contains(Int(cLevel)) else { return nil }
    self = all[Int(cLevel)]
  }
}
