#!/usr/bin/env bash
# The project's one test command: Swift unit, property and CLI tests, then the Python package's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c debug --product wide-ep
swift test
if [ -d python/tests ]; then
  python3 -m pip install -q numpy pytest >/dev/null 2>&1 || true
  swift build -c debug --product wideep
  WIDEEP_LIB="$(swift build -c debug --show-bin-path)/libwideep.so" python3 -m pytest -q python/tests
fi
