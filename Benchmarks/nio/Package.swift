// swift-tools-version:6.0
// SwiftNIO comparison server for the Twine benchmarks (see ../run.py).
// Build: swift build -c release --scratch-path .build   (run from this folder)
import PackageDescription

let package = Package(
  name: "nio-server",
  dependencies: [
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2")
  ],
  targets: [
    .executableTarget(
      name: "nio-server",
      dependencies: [
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      path: "Sources/nio-server"
    )
  ]
)
