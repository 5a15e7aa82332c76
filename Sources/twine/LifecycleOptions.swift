import ArgumentParser

/// Options for running in production: graceful drain, zero-downtime restart (issue 16).
struct LifecycleOptions: ParsableArguments {
  @Option(
    parsing: .unconditional,
    help: ArgumentHelp(
      """
      On SIGTERM, stop accepting at once and give open connections this many seconds to finish \
      before closing them (0: close at once). A second SIGTERM, or SIGINT, closes at once.
      """, valueName: "seconds"))
  var drainTimeout: Double = 10

  @Option(
    help: ArgumentHelp(
      "Offer the listening sockets to a new twine started with --takeover on this UNIX-domain control socket.",
      valueName: "path"))
  var control: String?

  @Option(
    help: ArgumentHelp(
      """
      Take over the listening sockets of the twine whose --control socket this is (the \
      listening flags are ignored), then tell it to drain and exit.
      """, valueName: "path"))
  var takeover: String?

  func validate() throws {
    guard drainTimeout >= 0, drainTimeout.isFinite else {
      throw ValidationError(
        "--drain-timeout must be 0 (close at once) or a finite number of seconds, not \(drainTimeout)")
    }
  }
}
