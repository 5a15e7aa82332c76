import Testing
import TwineProtocols
import TwineTesting

/// Random frames, encoded, then fed byte by byte, in random splits, and all at once: the
/// same frames must come out, in the same order, whatever the split. Seeded; a failure names its seed.
@Suite("Framing: any split of the stream gives the same frames")
struct FramingPropertyTests {
  /// A line that contains no delimiter and does not end in a way that moves the delimiter's first match.
  static func randomLine(delimiter: [UInt8], maxLength: Int, _ rng: inout SplitMix64) -> [UInt8] {
    // An alphabet that includes the delimiter's bytes, so near-misses are common.
    let alphabet = Array(Set(delimiter + Array("ab\r\n \0xyz".utf8)))
    for _ in 0..<50 {
      let length = Int.random(in: 0...min(maxLength, Bool.random(using: &rng) ? 12 : 300), using: &rng)
      let line = (0..<length).map { _ in alphabet.randomElement(using: &rng)! }
      let encoded = line + delimiter
      if firstMatch(delimiter, in: encoded) == line.count { return line }
    }
    return []
  }

  static func firstMatch(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
    guard haystack.count >= needle.count else { return nil }
    for start in 0...(haystack.count - needle.count) where Array(haystack[start..<(start + needle.count)]) == needle {
      return start
    }
    return nil
  }

  static let delimiters: [[UInt8]] = [[13, 10], [10], Array("ab|".utf8), [0, 0], Array("aa".utf8)]

  @Test("LineReceiver: lines come out whole and in order", arguments: Split.allCases)
  func lines(split: Split) {
    for seed in seeds {
      for delimiter in Self.delimiters {
        var rng = SplitMix64(seed: seed)
        let lines = (0..<Int.random(in: 0...60, using: &rng)).map { _ in
          Self.randomLine(delimiter: delimiter, maxLength: 1000, &rng)
        }
        let stream = lines.flatMap { $0 + delimiter }
        let proto = LineCollector()
        proto.delimiter = delimiter
        proto.maxLength = 1000
        let transport = feed(proto, split.chunks(stream, &rng))
        #expect(
          proto.events == lines.map(Event.frame), "seed \(seed), delimiter \(delimiter), \(split)")
        #expect(proto.bufferedByteCount == 0, "seed \(seed)")
        #expect(transport.closeReason == nil, "seed \(seed): \(String(describing: transport.closeReason))")
        transport.peerClosed()
      }
    }
  }

  @Test("LineReceiver: line and raw blocks interleaved, switched from inside both callbacks", arguments: Split.allCases)
  func modeSwitching(split: Split) {
    for seed in seeds {
      var rng = SplitMix64(seed: seed)
      var expected: [Event] = []
      var stream: [UInt8] = []
      for _ in 0..<Int.random(in: 1...40, using: &rng) {
        if Bool.random(using: &rng) {
          let line = Self.randomLine(delimiter: [13, 10], maxLength: 200, &rng).filter { $0 != UInt8(ascii: "R") }
          expected.append(.frame(line))
          stream += line + [13, 10]
        } else {
          // Raw blocks hold anything, delimiters included.
          let raw = randomBytes(Int.random(in: 0...300, using: &rng), &rng) + [13, 10]
          let header = Array("RAW:\(raw.count)".utf8)
          expected += [.frame(header), .raw(raw)]
          stream += header + [13, 10] + raw
        }
      }
      let proto = LineCollector()
      proto.switchesToRaw = true
      let transport = feed(proto, split.chunks(stream, &rng))
      #expect(proto.events == expected, "seed \(seed), \(split)")
      #expect(proto.isLineMode, "seed \(seed)")
      transport.peerClosed()
    }
  }

  @Test("LineReceiver: pausing between lines of one read loses and repeats nothing", arguments: Split.allCases)
  func linesWithPauses(split: Split) {
    for seed in seeds {
      var rng = SplitMix64(seed: seed)
      let lines = (0..<Int.random(in: 1...80, using: &rng)).map { _ in
        Self.randomLine(delimiter: [10], maxLength: 100, &rng)
      }
      let proto = LineCollector()
      proto.delimiter = [10]
      proto.pauseOn = UInt8(ascii: "a")
      let transport = feed(proto, split.chunks(lines.flatMap { $0 + [10] }, &rng))
      #expect(proto.events == lines.map(Event.frame), "seed \(seed), \(split)")
      transport.peerClosed()
    }
  }

  @Test("NetstringReceiver: strings come out whole and in order", arguments: Split.allCases)
  func netstrings(split: Split) {
    for seed in seeds {
      var rng = SplitMix64(seed: seed)
      let strings = (0..<Int.random(in: 0...60, using: &rng)).map { _ in
        randomBytes(Int.random(in: 0...(Bool.random(using: &rng) ? 10 : 2000), using: &rng), &rng)
      }
      let stream = strings.flatMap { Array("\($0.count):".utf8) + $0 + [UInt8(ascii: ",")] }
      let proto = NetstringCollector()
      proto.pauseOn = seed % 2 == 0 ? 7 : nil
      let transport = feed(proto, split.chunks(stream, &rng))
      #expect(proto.events == strings.map(Event.frame), "seed \(seed), \(split)")
      #expect(proto.bufferedByteCount == 0, "seed \(seed)")
      #expect(transport.closeReason == nil, "seed \(seed)")
      transport.peerClosed()
    }
  }

  @Test("IntNStringReceiver (1, 2, 4, 8-byte prefixes): strings come out whole and in order", arguments: Split.allCases)
  func lengthPrefixed(split: Split) {
    for seed in seeds {
      for size in [1, 2, 4, 8] {
        var rng = SplitMix64(seed: seed)
        let strings = (0..<Int.random(in: 0...60, using: &rng)).map { _ in
          randomBytes(Int.random(in: 0...(size == 1 ? 255 : 3000), using: &rng), &rng)
        }
        let stream = strings.flatMap { string in
          (0..<size).reversed().map { UInt8(truncatingIfNeeded: string.count >> (8 * $0)) } + string
        }
        let proto = IntNCollector(prefixSize: size)
        proto.pauseOn = seed % 2 == 1 ? 9 : nil
        let transport = feed(proto, split.chunks(stream, &rng))
        #expect(proto.events == strings.map(Event.frame), "seed \(seed), prefix \(size), \(split)")
        #expect(proto.bufferedByteCount == 0, "seed \(seed)")
        transport.peerClosed()
      }
    }
  }

  @Test("sendString and sendLine encode what the receivers decode")
  func encodersRoundTrip() throws {
    for seed in seeds {
      var rng = SplitMix64(seed: seed)
      let strings = (0..<20).map { _ in randomBytes(Int.random(in: 0...5000, using: &rng), &rng) }

      let netSender = NetstringCollector()
      let netOut = feed(netSender, [])
      for string in strings { netSender.sendString(string) }
      let netReceiver = NetstringCollector()
      let netIn = feed(netReceiver, Split.random.chunks(netOut.written, &rng))
      #expect(netReceiver.events == strings.map(Event.frame), "seed \(seed)")

      let intSender = IntNCollector(prefixSize: 2)
      let intOut = feed(intSender, [])
      for string in strings { try intSender.sendString(string) }
      let intReceiver = IntNCollector(prefixSize: 2)
      let intIn = feed(intReceiver, Split.random.chunks(intOut.written, &rng))
      #expect(intReceiver.events == strings.map(Event.frame), "seed \(seed)")

      let lines = strings.map { _ in Self.randomLine(delimiter: [13, 10], maxLength: 16384, &rng) }
      let lineSender = LineCollector()
      let lineOut = feed(lineSender, [])
      for line in lines { lineSender.sendLine(line) }
      let lineReceiver = LineCollector()
      let lineIn = feed(lineReceiver, Split.random.chunks(lineOut.written, &rng))
      #expect(lineReceiver.events == lines.map(Event.frame), "seed \(seed)")

      for transport in [netOut, netIn, intOut, intIn, lineOut, lineIn] { transport.peerClosed() }
    }
  }
}
