import TwineCore

/// The tutorial's Echo: writes back every byte it receives.
public final class Echo: Protocol {
  public override func dataReceived(_ data: RawSpan) {
    transport.write(data)
  }
}
