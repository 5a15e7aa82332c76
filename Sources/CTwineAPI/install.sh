#!/bin/sh
# Builds Twine's C API and installs it under PREFIX:
#   PREFIX/include/twine.h
#   PREFIX/lib/libtwine.a, PREFIX/lib/libtwine.so.0 (SONAME) and the libtwine.so link to it
#   PREFIX/lib/pkgconfig/twine.pc (shared), PREFIX/lib/pkgconfig/twine-static.pc
#
#   install.sh PREFIX [release|debug] [SCRATCH_PATH] [asan|tsan]
#
# SwiftPM builds the TwineCAPI static product (TwineC and everything it uses, but
# not libevent or the Swift runtime); libtwine.so is linked from all of its objects,
# exporting only the twine_* functions. With "asan", both are built with
# AddressSanitizer (the program linking them must be built with -fsanitize=address
# by the Swift toolchain's clang, whose runtime the instrumented code expects); "tsan"
# likewise with ThreadSanitizer.
#
# The same script builds a team's own library that bundles Twine's C API with their Swift
# protocols (Examples/swift-protocol-template): set TWINE_PACKAGE_DIR (the package to build),
# TWINE_PRODUCT (its static library product), TWINE_LIB (the library's name: libNAME.a,
# libNAME.so.MAJOR, NAME.pc, NAME-static.pc), TWINE_HEADERS (headers installed beside twine.h),
# TWINE_EXPORTS (the version script: which symbols libNAME.so exports) and TWINE_VERSION.
set -eu

prefix=${1:?usage: install.sh PREFIX [release|debug] [SCRATCH_PATH] [asan|tsan]}
config=${2:-release}
scratch=${3:-.build}
sanitize=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
swift=${SWIFT:-swift}
# The release (twine.h's TWINE_VERSION_*); the SONAME changes with the major only.
version=$(sed -n 's/^#define TWINE_VERSION_STRING "\(.*\)"$/\1/p' "$here/include/twine.h")
major=${version%%.*}

swiftc_path=$(readlink -f "$(command -v swiftc)")
toolchain=$(cd "$(dirname "$swiftc_path")/.." && pwd)
swift_libdir=$toolchain/lib/swift/linux
swift_static_libdir=$toolchain/lib/swift_static/linux

build_flags=""
link_flags=""
if [ "$sanitize" = asan ]; then
  build_flags="--sanitize=address"
  link_flags="-sanitize=address"
elif [ "$sanitize" = tsan ]; then
  build_flags="--sanitize=thread"
  link_flags="-sanitize=thread"
fi

package_dir=${TWINE_PACKAGE_DIR:-$root}
product=${TWINE_PRODUCT:-TwineCAPI}
lib=${TWINE_LIB:-twine}
headers="$here/include/twine.h ${TWINE_HEADERS:-}"
exports=${TWINE_EXPORTS:-$here/exports.map}
version=${TWINE_VERSION:-$version}
major=${version%%.*}
case "$scratch" in /*) ;; *) scratch=$(pwd)/$scratch ;; esac
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)

cd "$package_dir"
# shellcheck disable=SC2086
"$swift" build -c "$config" --scratch-path "$scratch" --product "$product" $build_flags
bin=$("$swift" build -c "$config" --scratch-path "$scratch" --show-bin-path $build_flags)
archive=$bin/lib$product.a

# libtwine.so from every object of the archive. Modules may have same-named files
# (Exports.swift): extract each member by its position among its namesakes (ar xN),
# under a name made unique by its index.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/objects"
(
  cd "$work/objects"
  ar t "$archive" | awk '{ seen[$0]++; print NR, seen[$0], $0 }' | while read -r index nth member; do
    ar xN "$nth" "$archive" "$member"
    mv "$member" "$index-$member"
  done
)
# shellcheck disable=SC2086
swiftc -emit-library -o "$work/lib$lib.so.$major" "$work"/objects/*.o $link_flags \
  -Xlinker -soname -Xlinker "lib$lib.so.$major" -Xlinker --version-script -Xlinker "$exports"

# The libraries the archive's objects ask for, in link order: the Swift runtime's static
# ones, and OpenSSL's libevent layer (-levent_openssl -lssl -lcrypto, for TLS). libevent's
# own libraries come from the Requires line instead, so pkg-config orders them after.
static_libs="$(swift-autolink-extract "$archive" -o - | tr ' ' '\n' | grep -v -e '^-levent_core$' -e '^-levent_extra$' -e '^-levent_pthreads$' | awk 'NF && !seen[$0]++' | tr '\n' ' ')"
static_libs="$static_libs-ldispatch -lBlocksRuntime -lstdc++ -lm -ldl -lpthread"

mkdir -p "$prefix/include" "$prefix/lib/pkgconfig"
# shellcheck disable=SC2086
cp $headers "$prefix/include/"
cp "$archive" "$prefix/lib/lib$lib.a"
cp "$work/lib$lib.so.$major" "$prefix/lib/lib$lib.so.$major"
ln -sf "lib$lib.so.$major" "$prefix/lib/lib$lib.so"
prefix_abs=$(cd "$prefix" && pwd)
for pc in twine twine-static; do
  sed -e "s|@PREFIX@|$prefix_abs|" -e "s|@VERSION@|$version|" -e "s|@SWIFT_LIBDIR@|$swift_libdir|" \
    -e "s|@SWIFT_STATIC_LIBDIR@|$swift_static_libdir|" -e "s|@SWIFT_STATIC_LIBS@|$static_libs|" \
    -e "s|@LIB@|$lib|g" "$here/$pc.pc.in" >"$prefix/lib/pkgconfig/$lib${pc#twine}.pc"
done
echo "installed $lib $version ($config${sanitize:+, $sanitize}) under $prefix_abs"
