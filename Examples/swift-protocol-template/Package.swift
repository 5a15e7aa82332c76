// swift-tools-version:6.0
import PackageDescription

// A team's own Swift protocols, built into ONE C library together with Twine's C API:
// libgreeter.a / libgreeter.so + greeter.h + twine.h + greeter.pc (`make swift-template`
// at the top of the repository). Copy this directory, rename "greeter", and point the
// Twine dependency at a Twine checkout (here: Dependencies/Twine, a link to this repository).
let package = Package(
  name: "Greeter",
  products: [
    // The static archive install.sh turns into libgreeter.a and libgreeter.so.
    .library(name: "GreeterCAPI", type: .static, targets: ["Greeter"])
  ],
  dependencies: [.package(path: "Dependencies/Twine")],
  targets: [
    .target(
      name: "Greeter",
      dependencies: [
        .product(name: "TwineCAPI", package: "Twine"),
        .product(name: "TwineProtocols", package: "Twine"),
      ],
      swiftSettings: [.enableUpcomingFeature("ExistentialAny")])
  ]
)
