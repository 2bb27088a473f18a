#!/usr/bin/env bash
# make test: start, in the background, the builds the integration suites need later - the simulated cluster's Go
# binaries, and the simulated hosts' packages, image, tiny model and NIM stand-in image - so that they overlap the
# checks that run first (sanity, lint, unit) instead of following them. Each build holds its own lock, so the
# suites' own calls wait for a build in progress and then find it cached; a background build that failed is
# simply done again, with its error, by the suite that needs it. Logs: $NIMOPS_CACHE/prebuild-*.log.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${NIMOPS_CACHE:-$HOME/.cache/nimops}
mkdir -p "$cache"
setsid tests/simcluster/build.sh </dev/null >"$cache/prebuild-cluster.log" 2>&1 &
setsid bash -c 'tests/simhosts/make-model.sh && tests/simhosts/build-nim-standin.sh' \
    </dev/null >"$cache/prebuild-hosts.log" 2>&1 &
echo "[prebuild] simulated cluster binaries and simulated hosts' images building in the background ($cache/prebuild-*.log)"
