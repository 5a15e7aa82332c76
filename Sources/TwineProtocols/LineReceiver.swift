import TwineCore

/// Splits the byte stream into lines (Twisted's `LineReceiver`): override
/// ``lineReceived(_:)``; answer with ``sendLine(_:)-(RawSpan)``.
///
/// ```swift
/// final class Shout: LineReceiver {
///   override func lineReceived(_ line: RawSpan) { sendLine(line.utf8String.uppercased()) }
/// }
/// ```
///
/// - A line lying wholly inside one read is handed up as a view into that read: no copy,
///   no allocation. Only the unfinished line at the end of a read is copied, to be completed
///   by the next.
/// - Safe against a hostile peer: at most ``maxLength`` + ``delimiter``.count − 1 bytes of an
///   unfinished line are ever kept. A longer line is reported to ``lineLengthExceeded(_:)``
///   as soon as that many bytes arrived without a delimiter (a 100 MiB line costs one read,
///   not 100 MiB), and the rest of the read is not looked at when the connection closes.
/// - ``setRawMode()`` and ``setLineMode(extra:)-(RawSpan)`` switch between lines and
///   ``rawDataReceived(_:)`` at any point, also from inside either callback, without losing
///   or repeating a byte.
/// - ``FramingReceiver/pauseProducing()`` stops delivery between two lines of one read;
///   after `loseConnection`, no further line is delivered.
open class LineReceiver: FramingReceiver {
  /// The bytes that end a line; default `"\r\n"`. Must not be empty. Change it in
  /// `connectionMade` or from `lineReceived`, not while a line is half received.
  public var delimiter: [UInt8] = [13, 10] {
    didSet {
      precondition(!delimiter.isEmpty, "LineReceiver.delimiter must not be empty")
      changes &+= 1
    }
  }

  /// The longest line accepted, in bytes, not counting the delimiter; default 16384 (Twisted's `MAX_LENGTH`).
  public var maxLength = 16384 {
    didSet { changes &+= 1 }
  }

  /// True while bytes are split into lines; false in raw mode.
  public private(set) var isLineMode = true {
    didSet { changes &+= 1 }
  }

  /// Counts changes to the settings above, so the loop over the lines of one read re-reads
  /// them only after a callback that changed one.
  private var changes = 0

  /// The start of a line whose end has not arrived yet (in skip mode, the last bytes of a
  /// discarded line, in case they begin a delimiter).
  private var partial: [UInt8] = []
  /// True while discarding the rest of an over-long line, up to the next delimiter.
  private var skipping = false

  /// Makes a receiver in line mode.
  public required init() { super.init() }

  /// One line arrived, without its delimiter. `line` is borrowed (from the read, or from
  /// the buffer that joined a line split across reads) and valid only during the call.
  open func lineReceived(_ line: RawSpan) {}

  /// Bytes arrived in raw mode (after ``setRawMode()``). Borrowed, valid during the call.
  /// To go back to lines, call ``setLineMode(extra:)-(RawSpan)`` with the bytes of `data`
  /// that are not yours (`data.extracting(droppingFirst: used)`).
  open func rawDataReceived(_ data: RawSpan) {}

  /// A line longer than ``maxLength`` arrived; `length` is how many bytes of it had
  /// arrived when that was found (more than ``maxLength``; more may follow). The default
  /// closes the connection with `.protocolError("line longer than N bytes")`. An override
  /// that keeps the connection open gets the lines after it: the rest of the long line is
  /// discarded up to and including its delimiter.
  open func lineLengthExceeded(_ length: Int) {
    framingError("line longer than \(maxLength) bytes")
  }

  /// From now on, hand bytes to ``rawDataReceived(_:)``. Called from ``lineReceived(_:)``,
  /// the rest of the current read goes raw. Called elsewhere, an unfinished line already
  /// held is handed to ``rawDataReceived(_:)`` at once.
  public func setRawMode() {
    guard isLineMode else { return }
    isLineMode = false
    if skipping {
      skipping = false
      partial = []
    } else if !partial.isEmpty {
      pending.insert(contentsOf: partial, at: 0)
      partial = []
      deliverPending()
    }
  }

  /// From now on, split bytes into lines; `extra` (the part of a raw read that is not raw
  /// data) is split first, before any later read.
  public func setLineMode(extra: RawSpan) {
    isLineMode = true
    if extra.byteCount > 0 { extra.withUnsafeBytes { receive($0) } }
  }

  /// From now on, split bytes into lines; `extra` is split first.
  public func setLineMode(extra: [UInt8] = []) {
    extra.withUnsafeBytes { setLineMode(extra: $0.bytes) }
  }

  /// Sends `line` followed by ``delimiter``; one write for short lines, two otherwise, never a heap copy.
  public func sendLine(_ line: RawSpan) {
    let total = line.byteCount + delimiter.count
    if total <= 2048 {
      withUnsafeTemporaryAllocation(byteCount: total, alignment: 1) { joined in
        line.withUnsafeBytes { joined.copyMemory(from: $0) }
        delimiter.withUnsafeBytes {
          UnsafeMutableRawBufferPointer(rebasing: joined[line.byteCount...]).copyMemory(from: $0)
        }
        transport.write(UnsafeRawBufferPointer(joined).bytes)
      }
    } else {
      transport.write(line)
      transport.write(delimiter)
    }
  }

  /// Sends the bytes of `line` followed by ``delimiter``.
  public func sendLine(_ line: [UInt8]) {
    line.withUnsafeBytes { sendLine($0.bytes) }
  }

  /// Sends the UTF-8 bytes of `line` followed by ``delimiter``.
  public func sendLine(_ line: String) {
    var line = line
    line.withUTF8 { sendLine(UnsafeRawBufferPointer($0).bytes) }
  }

  // MARK: Parsing

  override var partialByteCount: Int { partial.count }

  override func parse(_ bytes: UnsafeRawBufferPointer) -> Int {
    let count = bytes.count
    var index = 0
    while index < count {
      if shouldStop { return index }
      if !isLineMode {
        rawDataReceived(UnsafeRawBufferPointer(rebasing: bytes[index...]).bytes)
        return count
      }
      if skipping {
        if let end = lineEnd(bytes, from: index, limit: count) {
          skipping = false
          partial = []
          index = end
          continue
        }
        keepDelimiterPrefix(bytes, from: index)
        return count
      }
      if partial.isEmpty {
        // The common case: lines wholly inside this read, handed up in place. The settings
        // are read once; a callback that changes one, pauses or closes ends this inner loop.
        let delimiter = self.delimiter
        let width = delimiter.count
        let maxLength = self.maxLength
        let version = changes
        let transport: any Transport = self.transport
        while true {
          let window = min(count, index + maxLength + width)
          if let start = bytes.firstIndex(of: delimiter, from: index, to: window) {
            let line = UnsafeRawBufferPointer(rebasing: bytes[index..<start])
            index = start + width
            lineReceived(line.bytes)
            if index < count && halt == 0 && changes == version && !transport.disconnecting { continue }
          } else if count - index >= maxLength + width {
            index = overlong(bytes, from: index)
          } else {
            partial.append(contentsOf: bytes[index...])
            return count
          }
          break
        }
        continue
      }
      // A line begun in an earlier read: find its end, join, hand up the joined copy.
      let width = delimiter.count
      let limit = min(count, index + max(0, maxLength + width - partial.count))
      if let end = lineEnd(bytes, from: index, limit: limit) {
        partial.append(contentsOf: bytes[index..<end])
        index = end
        let length = partial.count - width
        var line: [UInt8] = []
        swap(&line, &partial)
        if length > maxLength {
          lineLengthExceeded(length)
        } else {
          line.withUnsafeBytes { lineReceived(UnsafeRawBufferPointer(rebasing: $0[..<length]).bytes) }
        }
      } else if partial.count + count - index >= maxLength + width {
        index = overlong(bytes, from: index)
      } else {
        partial.append(contentsOf: bytes[index...])
        return count
      }
    }
    return count
  }

  /// The line that begins with ``partial`` and goes on at `bytes[from...]` is too long:
  /// report it, and discard it up to its delimiter (in this read, or later in skip mode).
  /// Returns where parsing goes on.
  private func overlong(_ bytes: UnsafeRawBufferPointer, from: Int) -> Int {
    if let end = lineEnd(bytes, from: from, limit: bytes.count) {
      let length = partial.count + end - delimiter.count - from
      partial = []
      lineLengthExceeded(length)
      return end
    }
    let length = partial.count + bytes.count - from
    skipping = true
    keepDelimiterPrefix(bytes, from: from)
    lineLengthExceeded(length)
    return bytes.count
  }

  /// Where the line that begins with ``partial`` ends in `bytes` (just past its delimiter,
  /// which may have begun in ``partial``), looking no further than `limit`; or nil.
  private func lineEnd(_ bytes: UnsafeRawBufferPointer, from: Int, limit: Int) -> Int? {
    let width = delimiter.count
    if width > 1 && !partial.isEmpty {
      // A delimiter split across reads: its first `inPartial` bytes end `partial`. Try the earliest start first.
      var inPartial = min(width - 1, partial.count)
      while inPartial >= 1 {
        let rest = width - inPartial
        if from + rest <= bytes.count
          && partial[(partial.count - inPartial)...].elementsEqual(delimiter[..<inPartial])
          && bytes[from..<(from + rest)].elementsEqual(delimiter[inPartial...])
        {
          return from + rest
        }
        inPartial -= 1
      }
    }
    return bytes.firstIndex(of: delimiter, from: from, to: limit).map { $0 + width }
  }

  /// In skip mode, keeps only the last ``delimiter``.count − 1 bytes seen, which may begin a delimiter.
  private func keepDelimiterPrefix(_ bytes: UnsafeRawBufferPointer, from: Int) {
    let keep = delimiter.count - 1
    partial.append(contentsOf: bytes[max(from, bytes.count - keep)...])
    if partial.count > keep { partial.removeFirst(partial.count - keep) }
  }
}
