@_exported import Twine
