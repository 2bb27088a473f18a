#!/usr/bin/env bash
# make integration: the integration suites in two groups side by side, each spending most of its time waiting on
# real processes, so together they take about as long as the longer one alone.
# - The cluster group: the simulated cluster's suites, on the suites' own sim (conftest.TEST_SIM_ENV).
# - The second group, in the background: the bare-host tests (simulated hosts, which need none of the Go builds,
#   so they start at once, even while those builds run), then a share of the cluster suites on a sim of its own
#   (own state dir, ports shifted by 5000 more), so that both groups end at about the same time.
# The second group's output goes to build/integration-hosts.log (printed when it ends); the exit status is
# non-zero when any part fails. NIMOPS_TEST_SERIAL=1 runs everything as one pytest session instead.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
py=.venv/bin/python
args=(-q --durations=40 -p no:cacheprovider)
t=tests/integration
# The bare-host part: whole files, and the bare-host cases of files that also test the cluster.
host_files=("$t/test_docker_deploy.py" "$t/test_docker_engine.py" "$t/test_docker_host_options.py" "$t/test_docker_nim.py"
            "$t/test_docker_security.py" "$t/test_faults_hosts.py" "$t/test_fleet_docker.py")
host_cases=("$t/test_awx_jobs.py::test_docker_templates_on_the_sim_hosts"
            "$t/test_leak_scan.py::test_no_secret_leaks_on_bare_hosts"
            "$t/test_molecule.py::test_molecule_scenario[bare_hosts-sim_hosts-1500]")
# Cluster suites that follow the bare-host part, chosen by their durations so that the two groups balance.
moved_files=("$t/test_fleet_k8s.py" "$t/test_demo.py")

if [ "${NIMOPS_TEST_SERIAL:-0}" = 1 ]; then
    tests/simcluster/build.sh || exit 1
    exec "$py" -m pytest "${args[@]}" "$t"
fi

cache=${NIMOPS_CACHE:-$HOME/.cache/nimops}
second_sim_dir=${NIMOPS_TEST_SIM_DIR:-$cache/simcluster-tests}-2
second_sim_offset=$(( ${NIMOPS_TEST_SIM_PORT_OFFSET:-3500} + 5000 ))
mkdir -p build
log=build/integration-hosts.log
start=$(date +%s)
# shellcheck disable=SC2016  # expanded by the inner shell
setsid bash -c '
    py=$1 sim_dir=$2 sim_offset=$3 nhost=$4; shift 4
    "$py" -u -m pytest "${@:1:nhost}"; hosts_rc=$?
    shift "$nhost"
    echo "[integration] bare-host part rc=$hosts_rc; the cluster suites moved here follow, on their own sim"
    tests/simcluster/build.sh && NIMOPS_TEST_SIM_DIR=$sim_dir NIMOPS_TEST_SIM_PORT_OFFSET=$sim_offset \
        "$py" -u -m pytest "$@"; moved_rc=$?
    echo "[integration] bare-host group done after $SECONDS s"
    [ "$hosts_rc" = 0 ] && [ "$moved_rc" = 0 ]' integration-hosts "$py" "$second_sim_dir" "$second_sim_offset" \
    $(( ${#args[@]} + ${#host_files[@]} + ${#host_cases[@]} )) \
    "${args[@]}" "${host_files[@]}" "${host_cases[@]}" "${args[@]}" "${moved_files[@]}" \
    </dev/null >"$log" 2>&1 &
hosts_pid=$!
# Stop the background group too when this one is interrupted.
trap 'kill -- -"$hosts_pid" 2>/dev/null' INT TERM
echo "[integration] bare-host group running in the background (pid $hosts_pid, log $log); the cluster group follows"

ignores=()
for f in "${host_files[@]}" "${moved_files[@]}"; do ignores+=(--ignore "$f"); done
deselects=()
for c in "${host_cases[@]}"; do deselects+=(--deselect "$c"); done
tests/simcluster/build.sh && "$py" -m pytest "${args[@]}" "${ignores[@]}" "${deselects[@]}" "$t"
cluster_rc=$?
echo "[integration] cluster group done after $(( $(date +%s) - start )) s"

wait "$hosts_pid"
hosts_rc=$?
echo
echo "[integration] ---------------- bare-host group (build/integration-hosts.log) ----------------"
cat "$log"
echo "[integration] cluster group rc=$cluster_rc, bare-host group rc=$hosts_rc"
[ "$cluster_rc" = 0 ] && [ "$hosts_rc" = 0 ]
