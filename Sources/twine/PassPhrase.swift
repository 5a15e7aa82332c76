import Glibc

/// Why a pass phrase file cannot be used; the text names the file and the cause.
struct PassPhraseError: Error, CustomStringConvertible {
  let description: String
}

/// The first line of the file at `path`, without its `\n` or `\r\n`: the pass phrase of an
/// encrypted key. Throws when the file cannot be read or its first line is empty.
func readPassPhrase(_ path: String) throws(PassPhraseError) -> String {
  func failure(_ code: Int32) -> PassPhraseError {
    PassPhraseError(description: "cannot read the pass phrase file \(path): \(String(cString: strerror(code)))")
  }
  let fd = open(path, O_RDONLY | O_CLOEXEC)
  guard fd >= 0 else { throw failure(errno) }
  defer { close(fd) }
  var bytes: [UInt8] = []
  var chunk = [UInt8](repeating: 0, count: 4096)
  while bytes.count < 65536 && !bytes.contains(UInt8(ascii: "\n")) {
    let got = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    if got == 0 { break }
    if got < 0 {
      if errno == EINTR { continue }
      throw failure(errno)
    }
    bytes += chunk[..<got]
  }
  var line = bytes.prefix { $0 != UInt8(ascii: "\n") }
  if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
  guard !line.isEmpty else {
    throw PassPhraseError(description: "the pass phrase file \(path) has an empty first line")
  }
  return String(decoding: line, as: UTF8.self)
}
