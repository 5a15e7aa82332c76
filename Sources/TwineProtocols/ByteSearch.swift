#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

extension UnsafeRawBufferPointer {
  /// The first index `p` in `from..<to` where all of `needle` lies within `from..<to`
  /// (`p + needle.count <= to`), or nil. `memchr` finds candidates for the first byte.
  func firstIndex(of needle: [UInt8], from: Int, to: Int) -> Int? {
    let count = needle.count
    guard count > 0, to - from >= count, let base = baseAddress else { return nil }
    let first = Int32(needle[0])
    var position = from
    while position + count <= to {
      guard let hit = memchr(base + position, first, to - count + 1 - position) else { return nil }
      let candidate = base.distance(to: UnsafeRawPointer(hit))
      var matched = 1
      while matched < count && self[candidate + matched] == needle[matched] { matched += 1 }
      if matched == count { return candidate }
      position = candidate + 1
    }
    return nil
  }
}
