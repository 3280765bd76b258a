#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing, starts the local
# services, builds, and runs every test (unit, MySQL fixture and end-to-end) with cargo-nextest.
# Idempotent and quick when everything is already there. `.ci/run` calls this.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
log() { printf '[test] %s\n' "$*" >&2; }

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest (crates.io)"
  cargo install cargo-nextest --locked
fi

# A full build and the suite's services take about 10 GiB; a full disk shows up much later as a
# confusing "failed to write" from rustc, so say it first.
free_kib=$(df -Pk "$ROOT" | awk 'NR==2 {print $4}')
if [ -n "$free_kib" ] && [ "$free_kib" -lt $((6 * 1024 * 1024)) ]; then
  echo "[test] FAILED: only $((free_kib / 1024)) MiB free on the disk holding $ROOT; the build and the services need about 10 GiB. Free some space (cargo clean, old clones) and run again." >&2
  exit 1
fi

start=$(date +%s)
bash scripts/services.sh up
# Extra MariaDB instances some tests need (binlog off; MINIMAL row metadata and purgeable binlogs;
# a GTID replica of the main one, the snapshot host of the replica tests; one that requires TLS).
bash scripts/services.sh nobinlog
bash scripts/services.sh scratch
bash scripts/services.sh replica
bash scripts/services.sh tls
log "services ready in $(( $(date +%s) - start ))s"

start=$(date +%s)
cargo build --workspace --all-targets
bash scripts/build-transforms.sh
log "build finished in $(( $(date +%s) - start ))s"

# Formatting, lints and docs: the tree is kept fmt-, clippy- and rustdoc-clean.
start=$(date +%s)
if ! cargo fmt --all --check; then
  echo "[test] FAILED: the code is not formatted (diff above). Run \`cargo fmt --all\` and commit the result." >&2
  exit 1
fi
# The SDK's ABI glue exists only on wasm32 (build-transforms.sh installed the target above).
if ! cargo clippy --workspace --all-targets -- -D warnings \
  || ! cargo clippy --target wasm32-wasip2 -p sluice-guest -- -D warnings; then
  echo "[test] FAILED: clippy reports warnings (above); fix them, as \`-D warnings\` makes each one an error." >&2
  exit 1
fi
# The crates' docs build without broken links, and public docs link to no private item.
if ! RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p sluice -p sluice-guest -p sluice-contract \
  || ! RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --document-private-items -p sluice -p sluice-guest -p sluice-contract; then
  echo "[test] FAILED: cargo doc failed (above): a warning (a link to a missing or private item) or an error (a full disk shows as 'failed to write')." >&2
  exit 1
fi
log "fmt, clippy and doc clean in $(( $(date +%s) - start ))s"

# The Python and JavaScript SDKs and examples have native unit tests of their own (pytest and
# Node's test runner), as an author runs them; scripts/guest-tools.sh installed both.
start=$(date +%s)
.work/guest-tools/py/bin/pytest -q -p no:cacheprovider guest-sdk/python/tests transforms/python
(cd guest-sdk/js && node --test test/)
(cd transforms/js && node --test)
log "Python and JavaScript unit tests passed in $(( $(date +%s) - start ))s"

# `--run-ignored all`: the few library tests that need the live services (marked #[ignore] so
# that a plain `cargo test` without them passes) run here, where the services are up.
cargo nextest run --workspace --no-fail-fast --run-ignored all "$@"
