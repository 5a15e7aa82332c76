import Testing
import TwineProtocols
import TwineTesting

/// Closes the connection from inside lineReceived on a chosen line.
final class ClosingLines: LineReceiver {
  var lines: [String] = []
  var abort = false
  override func lineReceived(_ line: RawSpan) {
    lines.append(line.utf8String)
    if line.utf8String == "bye" {
      if abort { transport.abortConnection() } else { transport.loseConnection() }
    }
  }
}

/// Switches to raw mode on "raw" and stays there.
final class RawAfterHeader: LineReceiver {
  var events: [Event] = []
  override func lineReceived(_ line: RawSpan) {
    events.append(.frame(line.bytes))
    if line.utf8String == "raw" { setRawMode() }
  }
  override func rawDataReceived(_ data: RawSpan) { events.append(.raw(data.bytes)) }
}

/// Switches to LF lines and a 3-byte limit on the line "switch".
final class SwitchingDelimiter: LineReceiver {
  var lines: [String] = []
  override func lineReceived(_ line: RawSpan) {
    lines.append(line.utf8String)
    if line.utf8String == "switch" {
      delimiter = [10]
      maxLength = 3
    }
  }
}

@Suite("LineReceiver")
struct LineReceiverTests {
  @Test("splits on CRLF; a line across reads is joined; a bare LF or CR is part of the line")
  func splitsOnCRLF() {
    let proto = LineCollector()
    let transport = feed(proto, [Array("one\r\ntw".utf8), Array("o\r".utf8), Array("\nthree\nx\r\r\n".utf8)])
    defer { transport.peerClosed() }
    #expect(proto.events == [.frame(Array("one".utf8)), .frame(Array("two".utf8)), .frame(Array("three\nx\r".utf8))])
    #expect(proto.bufferedByteCount == 0)
  }

  @Test("holds only the unfinished tail of a read")
  func buffersOnlyTheTail() {
    let proto = LineCollector()
    let transport = feed(proto, [Array("a\r\nbb\r\nccc".utf8)])
    defer { transport.peerClosed() }
    #expect(proto.events == [.frame([97]), .frame([98, 98])])
    #expect(proto.bufferedByteCount == 3)
  }

  @Test("sendLine writes the line and the delimiter, short or long")
  func sendLine() {
    let proto = LineCollector()
    let transport = feed(proto, [])
    defer { transport.peerClosed() }
    proto.sendLine("hi")
    let long = [UInt8](repeating: 7, count: 5000)
    proto.sendLine(long)
    proto.delimiter = [0]
    proto.sendLine([1, 2])
    #expect(transport.written == Array("hi\r\n".utf8) + long + [13, 10] + [1, 2, 0])
  }

  @Test("setRawMode inside lineReceived hands the rest of the same read to rawDataReceived")
  func rawFromInsideLineReceived() {
    let proto = RawAfterHeader()
    let transport = feed(proto, [Array("a\r\nraw\r\nxyz\r\nmore".utf8), Array("tail".utf8)])
    defer { transport.peerClosed() }
    #expect(
      proto.events == [
        .frame([97]), .frame(Array("raw".utf8)), .raw(Array("xyz\r\nmore".utf8)), .raw(Array("tail".utf8)),
      ])
  }

  @Test("setRawMode outside a callback hands a held partial line to rawDataReceived first")
  func rawFromOutsideKeepsPartialLine() {
    let proto = RawAfterHeader()
    let transport = feed(proto, [Array("line\r\npart".utf8)])
    defer { transport.peerClosed() }
    proto.setRawMode()
    transport.receive("ial")
    #expect(proto.events == [.frame(Array("line".utf8)), .raw(Array("part".utf8)), .raw(Array("ial".utf8))])
    #expect(proto.bufferedByteCount == 0)
  }

  @Test("setLineMode(extra:) from rawDataReceived splits the extra bytes before later reads")
  func lineModeFromInsideRaw() {
    let proto = LineCollector()
    proto.switchesToRaw = true
    let transport = feed(proto, [Array("RAW:3\r\nabcline1\r\nli".utf8), Array("ne2\r\n".utf8)])
    defer { transport.peerClosed() }
    #expect(
      proto.events == [
        .frame(Array("RAW:3".utf8)), .raw(Array("abc".utf8)), .frame(Array("line1".utf8)),
        .frame(Array("line2".utf8)),
      ])
  }

  @Test("setLineMode(extra:) outside a callback splits extra at once")
  func lineModeFromOutside() {
    let proto = RawAfterHeader()
    let transport = feed(proto, [Array("raw\r\n".utf8)])
    defer { transport.peerClosed() }
    proto.setLineMode(extra: Array("x\r\ny".utf8))
    transport.receive("z\r\n")
    #expect(proto.events == [.frame(Array("raw".utf8)), .frame([120]), .frame(Array("yz".utf8))])
  }

  @Test("a delimiter and limit changed in lineReceived apply to the rest of the same read")
  func settingsChangedMidRead() {
    for split in Split.allCases {
      var rng = SplitMix64(seed: 11)
      let proto = SwitchingDelimiter()
      let transport = feed(proto, split.chunks(Array("a\r\nswitch\r\nb\r\nc\nlong\n".utf8), &rng))
      #expect(proto.lines == ["a", "switch", "b\r", "c"], "\(split)")
      #expect(protocolErrorMessage(transport.closeReason) == "line longer than 3 bytes", "\(split)")
    }
  }

  @Test("no line is delivered after loseConnection from lineReceived, even from the same read")
  func stopsAfterLoseConnection() {
    let proto = ClosingLines()
    let transport = feed(proto, [Array("a\r\nbye\r\nb\r\nc\r\n".utf8)])
    #expect(proto.lines == ["a", "bye"])
    #expect(transport.closeReason == .closedByUs)
  }

  @Test("no line is delivered after abortConnection from lineReceived")
  func stopsAfterAbort() {
    let proto = ClosingLines()
    proto.abort = true
    let transport = feed(proto, [Array("bye\r\nb\r\n".utf8)])
    #expect(proto.lines == ["bye"])
    #expect(transport.closeReason == .aborted)
  }

  @Test("pauseProducing in lineReceived holds the rest of the read until resumeProducing")
  func pauseHoldsRestOfRead() {
    let proto = LineCollector()
    proto.pauseOn = UInt8(ascii: "p")
    let transport = feed(proto, [Array("a\r\np\r\nb\r\nc".utf8)], resumeAfterEachRead: false)
    defer { transport.peerClosed() }
    #expect(proto.events == [.frame([97]), .frame([112])])
    #expect(proto.isPaused && transport.producerPaused)
    transport.receive("\r\nd\r\n")  // held by the paused transport
    #expect(proto.events.count == 2)
    proto.resumeProducing()
    #expect(proto.events == [.frame([97]), .frame([112]), .frame([98]), .frame([99]), .frame([100])])
    #expect(!transport.producerPaused)
  }

  @Test("a 1 MiB line without delimiter is refused at maxLength with a protocolError; nothing after it")
  func overlongInOneRead() {
    let proto = LineCollector()
    let huge = [UInt8](repeating: 65, count: 1 << 20) + Array("\r\nlate\r\n".utf8)
    let transport = feed(proto, [Array("ok\r\n".utf8), huge])
    #expect(proto.events == [.frame(Array("ok".utf8)), .exceeded(1 << 20)])
    #expect(protocolErrorMessage(transport.closeReason) == "line longer than 16384 bytes")
    #expect(proto.bufferedByteCount <= proto.maxLength + 1)
  }

  @Test("a long line fed in small reads is refused once the held bytes pass maxLength")
  func overlongAcrossReads() {
    let proto = LineCollector()
    proto.maxLength = 100
    var reads = 0
    let transport = StringTransport()
    transport.connect(proto)
    while !transport.isClosed && reads < 1000 {
      transport.receive([UInt8](repeating: 66, count: 7))
      reads += 1
      #expect(proto.bufferedByteCount <= proto.maxLength + 1)
    }
    #expect(reads == 15)  // 15 × 7 = 105 ≥ 100 + 2: found as soon as no delimiter can fit
    #expect(proto.events == [.exceeded(105)])
    #expect(protocolErrorMessage(transport.closeReason) == "line longer than 100 bytes")
  }

  @Test("a complete line one byte over maxLength is refused; one at maxLength is delivered")
  func exactLimit() {
    let proto = LineCollector()
    proto.maxLength = 10
    let atLimit = [UInt8](repeating: 120, count: 10)
    let transport = feed(proto, [atLimit + [13, 10], atLimit + [120, 13], [10]])
    // Found when 12 bytes of the line had come (the `\r` might have begun a delimiter): no wait for the `\n`.
    #expect(proto.events == [.frame(atLimit), .exceeded(12)])
    #expect(protocolErrorMessage(transport.closeReason) == "line longer than 10 bytes")
  }

  @Test("an override that keeps the connection gets the lines after an over-long one")
  func overlongSkippedWhenKeptOpen() {
    for split in Split.allCases {
      var rng = SplitMix64(seed: 9)
      let proto = LineCollector()
      proto.maxLength = 8
      proto.keepOpenOnOverlong = true
      let stream = Array("short\r\n0123456789abcdef\r\r\nnext\r\n0123456789\r\nlast\r\n".utf8)
      let transport = feed(proto, split.chunks(stream, &rng))
      defer { transport.peerClosed() }
      let frames = proto.events.filter { if case .frame = $0 { true } else { false } }
      #expect(
        frames == [.frame(Array("short".utf8)), .frame(Array("next".utf8)), .frame(Array("last".utf8))], "\(split)")
      #expect(proto.events.count == 5, "\(split): \(proto.events)")
      #expect(transport.closeReason == nil)
    }
  }
}
