#!/usr/bin/env bash
# Installs the tools that build and test Python and JavaScript transforms, pinned, into the
# checkout (nothing system-wide but the Debian packages when they are missing):
#   .work/guest-tools/py   a virtualenv with guest-sdk/python/requirements.txt
#                          (componentize-py, pytest)
#   guest-sdk/js/node_modules   `npm ci` of guest-sdk/js/package-lock.json
#                          (@bytecodealliance/componentize-js, esbuild)
# Idempotent: each part is skipped while its stamp matches its pinned list. Prints the paths in
# the form `scripts/services.sh env` does when given `env`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
log() { printf '[guest-tools] %s\n' "$*" >&2; }
TOOLS=$ROOT/.work/guest-tools
mkdir -p "$TOOLS"

sha() { sha256sum "$@" | sha256sum | cut -c1-16; }

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]} (apt)"
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Python: a virtualenv of its own, so the pinned componentize-py never meets another version.
py_stamp=$(sha guest-sdk/python/requirements.txt)
if [ "$(cat "$TOOLS/py.stamp" 2>/dev/null)" != "$py_stamp" ] || [ ! -x "$TOOLS/py/bin/componentize-py" ]; then
  log "installing componentize-py and pytest (PyPI) into $TOOLS/py"
  python3 -m venv "$TOOLS/py"
  "$TOOLS/py/bin/pip" install -q --disable-pip-version-check -r guest-sdk/python/requirements.txt
  echo "$py_stamp" > "$TOOLS/py.stamp"
fi

# JavaScript: the SDK's own pinned packages, where its build script looks for them.
js_stamp=$(sha guest-sdk/js/package.json guest-sdk/js/package-lock.json)
if [ "$(cat "$TOOLS/js.stamp" 2>/dev/null)" != "$js_stamp" ] || [ ! -d guest-sdk/js/node_modules ]; then
  log "installing componentize-js and esbuild (npm ci) into guest-sdk/js/node_modules"
  (cd guest-sdk/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$js_stamp" > "$TOOLS/js.stamp"
fi

# The JavaScript examples depend on the SDK by path (`file:`); `npm ci` links it for their tests.
ex_stamp=$(sha transforms/js/package.json transforms/js/package-lock.json)
if [ "$(cat "$TOOLS/js-examples.stamp" 2>/dev/null)" != "$ex_stamp" ] || [ ! -e transforms/js/node_modules/sluice-transform ]; then
  (cd transforms/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$ex_stamp" > "$TOOLS/js-examples.stamp"
fi

if [ "${1:-}" = env ]; then
  echo "export SLUICE_PYTHON=$TOOLS/py/bin/python"
fi
