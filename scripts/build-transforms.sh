#!/usr/bin/env bash
# Builds the example transforms as WebAssembly components into target/wasm/:
#   filter.wasm mask.wasm route.wasm reshape.wasm probe.wasm, and probe-v2.wasm (the second
#   version the hot-reload test swaps in). Installs the wasm32-wasip2 target if it is missing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "[transforms] adding the wasm32-wasip2 target (rustup)" >&2
  rustup target add wasm32-wasip2
fi
out=target/wasm
mkdir -p "$out"
# Small, fast components: whole-program optimisation, no debug info (3.3 MB -> ~0.25 MB each).
export CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_DEBUG=false
names=(filter mask route reshape probe)
pkgs=()
for n in "${names[@]}"; do pkgs+=(-p "sluice-transform-$n"); done
cargo build --release --target wasm32-wasip2 "${pkgs[@]}"
for n in "${names[@]}"; do
  cp "target/wasm32-wasip2/release/sluice_transform_$n.wasm" "$out/$n.wasm"
done
# The probe's second version, for the hot-reload test (a separate target dir keeps the first).
cargo build --release --target wasm32-wasip2 -p sluice-transform-probe --features v2 --target-dir target/wasm-v2
cp target/wasm-v2/wasm32-wasip2/release/sluice_transform_probe.wasm "$out/probe-v2.wasm"
ls -la "$out" >&2

# The same examples in Python and JavaScript (transforms/python, transforms/js), built with the
# pinned componentize-py and componentize-js (scripts/guest-tools.sh installs them) into
# target/wasm/py/ and target/wasm/js/. Each build is skipped while its sources are unchanged.
bash scripts/guest-tools.sh
PY=$ROOT/.work/guest-tools/py/bin/python
stamp_of() { cat "$@" | sha256sum | cut -c1-16; }
build_guest() { # lang, source, output, command...
  local lang=$1 src=$2 out=$3; shift 3
  local sdk_files
  if [ "$lang" = py ]; then sdk_files=$(ls guest-sdk/python/sluice/*.py guest-sdk/python/requirements.txt); else sdk_files=$(ls guest-sdk/js/*.js guest-sdk/js/*.mjs guest-sdk/js/lib/*.js guest-sdk/js/package-lock.json); fi
  local want; want=$(stamp_of "$src" $(dirname "$src")/*.${src##*.} $sdk_files wit/transform.wit)
  if [ -f "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$want" ]; then return; fi
  mkdir -p "$(dirname "$out")"
  echo "[transforms] building $out" >&2
  "$@" > /dev/null
  echo "$want" > "$out.stamp"
}
for n in filter mask; do
  build_guest py "transforms/python/$n.py" "$out/py/$n.wasm" \
    "$PY" guest-sdk/python/sluice/build.py "transforms/python/$n.py" -o "$out/py/$n.wasm"
  build_guest js "transforms/js/$n.js" "$out/js/$n.wasm" \
    node guest-sdk/js/build.mjs "transforms/js/$n.js" -o "$out/js/$n.wasm"
done
# Test fixtures: a failing transform in each language, two versions of a Python one, one that
# uses every op and value, and one that keeps memory from every call (tests/all/polyglot.rs).
for n in fails tag_v1 tag_v2 every_op leaky; do
  build_guest py "tests/fixtures/guests/$n.py" "$out/py/$n.wasm" \
    "$PY" guest-sdk/python/sluice/build.py "tests/fixtures/guests/$n.py" -o "$out/py/$n.wasm"
done
build_guest js tests/fixtures/guests/fails.js "$out/js/fails.wasm" \
  node guest-sdk/js/build.mjs tests/fixtures/guests/fails.js -o "$out/js/fails.wasm"
# Compile the ones several `transform test` runs use into the artifact cache those runs use,
# once, here: an 18 MB component takes seconds to compile, which parallel tests would each pay.
if [ -x target/debug/sluice ]; then
  for w in "$out"/py/{filter,mask,fails}.wasm "$out"/js/{filter,mask,fails}.wasm; do
    SLUICE_CACHE_DIR=$out/cache SLUICE_LOG=error target/debug/sluice transform test "$w" --set columns=x --set drop_tables=x </dev/null >/dev/null 2>&1 || true
  done
fi
ls -la "$out"/py "$out"/js >&2
