import CTwineAPI
import Glibc
import Logging

/// Where a C host's reactor sends its log lines: stderr (the default), the host's
/// callback, or nowhere. Changed and used only on the reactor's thread.
final class LogSink: @unchecked Sendable {
  enum Target {
    case standardError
    case callback(twine_log_fn, UnsafeMutableRawPointer?)
    case discard
  }

  var target = Target.standardError
  var minLevel = Logger.Level.warning
  /// True while the host's callback runs (it must not destroy the reactor from there).
  private(set) var emitting = false

  /// Delivers one formatted line.
  func emit(_ level: Logger.Level, _ line: String) {
    switch target {
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

  /// The level for a `twine_log_level` value (clamped to trace...critical).
  init(cLevel: Int32) {
    let all: [Logger.Level] = [.trace, .debug, .info, .notice, .warning, .error, .critical]
    self = all[Int(min(max(cLevel, 0), 6))]
  }
}
