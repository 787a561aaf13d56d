#!/usr/bin/env bash
# The whole test suite: unit tests; then, as root, integration tests with real users, mounts
# and servers, and end-to-end tests with a real libvirtd and QEMU.
#
#   sudo tests/run.sh              everything
#   sudo tests/run.sh -L unit      only the unit tests (any ctest arguments work)
#
# Without root the root-only tests skip and say so.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ((EUID == 0)); then
  tests/deps.sh
else
  echo "tests/run.sh: not root, so the root-only tests will skip (sudo tests/run.sh runs them)"
fi
# SOCKHOOK_CMAKE_ARGS lets CI add -DCMAKE_COMPILE_WARNING_AS_ERROR=ON.
# shellcheck disable=SC2086
cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug ${SOCKHOOK_CMAKE_ARGS:-} >/dev/null
cmake --build build -j2
ctest --test-dir build --output-on-failure "$@"
