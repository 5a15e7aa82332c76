import TwineCore

/// The tutorial's HelloHD: greets, then closes (after the greeting is sent).
public final class HelloHD: Protocol {
  /// The exact greeting, CRLF included.
  public static let greeting = "Hello This is HD's Test protocol\r\n"

  public override func connectionMade() {
    transport.write(Self.greeting)
    transport.loseConnection()
  }
}
