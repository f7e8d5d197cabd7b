#!/usr/bin/env bash
# Sets up, builds and runs every test with ctest.
#   scripts/test.sh              Release build in build/
#   scripts/test.sh --sanitize   ASan+UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ "${1:-}" = "--sanitize" ]; then
  shift
  export FLAGSTONE_BUILD_DIR=${FLAGSTONE_BUILD_DIR:-build-asan}
  export FLAGSTONE_BUILD_TYPE=RelWithDebInfo
  set -- -DFLAGSTONE_SANITIZE=ON "$@"
  # intercept_tls_get_addr=0: up to GCC 13 the runtime's __tls_get_addr interceptor can take a
  # malloc'd dynamic-TLS block (PoCL's, here) for a pre-2.25 glibc header and crash LeakSanitizer's
  # tracer at exit, after a passing test ("Tracer caught signal 11").
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:intercept_tls_get_addr=0}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
scripts/build.sh "$@"
BUILD_DIR=${FLAGSTONE_BUILD_DIR:-build}
cd "$BUILD_DIR"
ctest --output-on-failure -j "${FLAGSTONE_TEST_JOBS:-$(nproc)}" --timeout 600
