#!/bin/sh
# Builds Twine's C API and installs it under PREFIX:
#   PREFIX/include/twine.h
#   PREFIX/lib/libtwine.a, PREFIX/lib/libtwine.so.0 (SONAME) and the libtwine.so link to it
#   PREFIX/lib/pkgconfig/twine.pc (shared), PREFIX/lib/pkgconfig/twine-static.pc
#
#   install.sh PREFIX [release|debug] [SCRATCH_PATH] [asan]
#
# SwiftPM builds the TwineCAPI static product (TwineC and everything it uses, but
# not libevent or the Swift runtime); libtwine.so is linked from all of its objects,
# exporting only the twine_* functions. With "asan", both are built with
# AddressSanitizer (the program linking them must be built with -fsanitize=address
# by the Swift toolchain's clang, whose runtime the instrumented code expects).
set -eu

prefix=${1:?usage: install.sh PREFIX [release|debug] [SCRATCH_PATH] [asan]}
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
fi

cd "$root"
# shellcheck disable=SC2086
"$swift" build -c "$config" --scratch-path "$scratch" --product TwineCAPI $build_flags
bin=$("$swift" build -c "$config" --scratch-path "$scratch" --show-bin-path $build_flags)
archive=$bin/libTwineCAPI.a

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
swiftc -emit-library -o "$work/libtwine.so.$major" "$work"/objects/*.o $link_flags \
  -Xlinker -soname -Xlinker "libtwine.so.$major" -Xlinker --version-script -Xlinker "$here/exports.map"

# The libraries the archive's objects ask for, in link order: the Swift runtime's static
# ones, and OpenSSL's libevent layer (-levent_openssl -lssl -lcrypto, for TLS). libevent's
# own libraries come from the Requires line instead, so pkg-config orders them after.
static_libs="$(swift-autolink-extract "$archive" -o - | tr ' ' '\n' | grep -v -e '^-levent_core$' -e '^-levent_extra$' -e '^-levent_pthreads$' | awk 'NF && !seen[$0]++' | tr '\n' ' ')"
static_libs="$static_libs-ldispatch -lBlocksRuntime -lstdc++ -lm -ldl -lpthread"

mkdir -p "$prefix/include" "$prefix/lib/pkgconfig"
cp "$here/include/twine.h" "$prefix/include/twine.h"
cp "$archive" "$prefix/lib/libtwine.a"
cp "$work/libtwine.so.$major" "$prefix/lib/libtwine.so.$major"
ln -sf "libtwine.so.$major" "$prefix/lib/libtwine.so"
prefix_abs=$(cd "$prefix" && pwd)
for pc in twine twine-static; do
  sed -e "s|@PREFIX@|$prefix_abs|" -e "s|@VERSION@|$version|" -e "s|@SWIFT_LIBDIR@|$swift_libdir|" \
    -e "s|@SWIFT_STATIC_LIBDIR@|$swift_static_libdir|" -e "s|@SWIFT_STATIC_LIBS@|$static_libs|" \
    "$here/$pc.pc.in" >"$prefix/lib/pkgconfig/$pc.pc"
done
echo "installed twine $version ($config${sanitize:+, $sanitize}) under $prefix_abs"
