#!/bin/sh
# Builds the DocC documentation of Twine's library modules with the toolchain's docc (no
# swift-docc-plugin dependency): symbol graphs from `swift package dump-symbol-graph`, one
# archive per module under OUT (default .build/docs/<Module>.doccarchive).
#
#   Scripts/docs.sh [OUT]
#
# Fails on any docc error, and on any warning from a catalog page (Sources/<Module>/<Module>.docc:
# a Topics entry or link that resolves to nothing). Warnings from doc comments in the sources are
# printed and counted; with STRICT=1 they fail too.
set -eu
swift=${SWIFT:-swift}
# The toolchain's docc: on PATH, else beside swift.
docc=${DOCC:-$(command -v docc || echo "$(dirname "$(readlink -f "$(command -v "$swift")")")/docc")}
out=${1:-.build/docs}
modules="TwineCore TwineProtocols TwineTesting Twine TwineAsync TwineServiceLifecycle TwineMetrics"
cd "$(dirname "$0")/.."

graphs=$("$swift" package dump-symbol-graph --emit-extension-block-symbols | sed -n 's/^Files written to //p')
[ -d "$graphs" ] || { echo "docs: no symbol graphs from swift package dump-symbol-graph" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

failed=0
for module in $modules; do
  mkdir "$work/$module"
  cp "$graphs/$module.symbols.json" "$work/$module/"
  for extension in "$graphs/$module"@*.symbols.json; do
    [ -e "$extension" ] && cp "$extension" "$work/$module/"
  done
  status=0
  "$docc" convert "Sources/$module/$module.docc" --additional-symbol-graph-dir "$work/$module" \
    --fallback-display-name "$module" --fallback-bundle-identifier "org.twine.$module" \
    --output-path "$out/$module.doccarchive" --analyze >"$work/$module.log" 2>&1 || status=$?
  # A diagnostic is a "warning:"/"error:" line, then a "--> FILE:LINE" line: FILE.md is the catalog.
  counts=$(awk '/^(warning|error):/ { pending = 1; next }
    pending && /-->/ { if ($2 ~ /\.md:/) page++; else comment++; pending = 0 }
    END { print page + 0, comment + 0 }' "$work/$module.log")
  set -- $counts
  if [ "$status" -ne 0 ] || [ "$1" -ne 0 ] || { [ "${STRICT:-0}" = 1 ] && [ "$2" -ne 0 ]; }; then
    cat "$work/$module.log"
    echo "docs: $module FAILED (docc exit $status, $1 catalog warnings, $2 doc-comment warnings)"
    failed=1
  elif [ "$2" -ne 0 ]; then
    grep -A1 -E '^warning:' "$work/$module.log" | grep -v -- '^--$' || true
    echo "docs: $module ok, $2 doc-comment warnings (above) -> $out/$module.doccarchive"
  else
    echo "docs: $module ok -> $out/$module.doccarchive"
  fi
done
exit $failed
