@_exported import TwineCore
