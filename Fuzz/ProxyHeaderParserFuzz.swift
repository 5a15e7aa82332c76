// Fuzzes ProxyHeaderParser: for any split of the stream into reads, the result must be the
// one a single read of the whole stream gives (the same header, found at the same offset,
// or the same error); a header is never longer than maxLength; v1 never past 107 bytes.
// Option bits 0-1 start the stream with "PROXY " or the v2 signature, to reach deep states.

import TwineCore

/// libFuzzer's entry point: one input, split into reads, checked against one whole read.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProxyHeaderParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  guard let raw = FuzzInput(data, size) else { return 0 }
  let prefix: [UInt8] =
    switch raw.options & 3 {
    case 1: Array("PROXY ".utf8)
    case 2: ProxyHeaderParser.signature
    default: []
    }
  let stream = prefix + raw.stream
  let maxLength = ProxyHeaderParser.minimumMaxLength + Int(raw.limit) * 16
  let whole = ProxyHeaderParser.parse(stream, maxLength: maxLength)
  // The same stream in the input's reads: the prefix first, then each read.
  var parser = ProxyHeaderParser(maxLength: maxLength)
  var offset = 0
  var split = ProxyHeaderParser.Result.needMore
  for read in [prefix[...]] + raw.reads where !read.isEmpty {
    split = read.withUnsafeBytes { parser.parse($0) }
    if case .header(let header, let consumed) = split {
      check(consumed >= 1 && consumed <= read.count, "consumed \(consumed) of a \(read.count)-byte read")
      split = .header(header, consumed: offset + consumed)
      break
    }
    if case .invalid = split { break }
    offset += read.count
  }
  check(split == whole, "split reads gave \(split), one read \(whole)")
  if case .header(let header, let length) = whole {
    check(length <= maxLength, "a \(length)-byte header with maxLength \(maxLength)")
    if header.version == .v1 { check(length <= ProxyHeaderParser.maxVersion1Length, "v1 header of \(length) bytes") }
    check((header.source == nil) == (header.destination == nil), "one address without the other: \(header)")
    if header.command == .local { check(header.source == nil, "LOCAL with an address") }
  }
  return 0
}
