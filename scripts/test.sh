#!/usr/bin/env bash
# test.sh - the README's test command: install dependencies, build (normal and
# ASan+UBSan), run the whole ctest suite on the normal build and the unit and
# integration tests on the sanitizer build. Exit code = verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}

scripts/install-deps.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPVLM_WERROR=ON >/dev/null
cmake --build build -j"$JOBS"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DPVLM_SANITIZE=ON -DPVLM_WERROR=ON -DPVLM_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$JOBS"

echo "== ctest (release build, full suite)"
(cd build && ctest --output-on-failure -j"$JOBS" ${CTEST_ARGS:-})
echo "== ctest (ASan+UBSan build, tests labelled 'unit' or 'sanitize')"
(cd build-asan && ctest --output-on-failure -j"$JOBS" -L 'unit|sanitize' ${CTEST_ARGS:-})
