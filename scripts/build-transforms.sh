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
