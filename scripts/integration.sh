#!/usr/bin/env bash
# make integration: the integration suites in two lanes side by side. Each lane spends most of its time waiting on
# real processes, so together they take about as long as the longer one alone.
#   background lane: the bare-host tests (simulated hosts), then a few Kubernetes files on a simulated cluster of
#                    their own (state dir simcluster-tests-b, ports shifted by 3600), which evens the lanes out;
#                    output in build/integration-hosts.log, printed when it ends
#   foreground lane: every other file, on the suites' simulated cluster
# The exit status is non-zero when any group fails. NIMOPS_TEST_SERIAL=1 runs everything as one pytest session.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
py=.venv/bin/python
args=(-q --durations=40 -p no:cacheprovider)
t=tests/integration
# The bare-host group: whole files, and the bare-host cases of files that also test the cluster.
host_files=("$t/test_docker_deploy.py" "$t/test_docker_nim.py" "$t/test_docker_security.py"
            "$t/test_faults_hosts.py" "$t/test_fleet_docker.py")
host_cases=("$t/test_awx_jobs.py::test_docker_templates_on_the_sim_hosts"
            "$t/test_leak_scan.py::test_no_secret_leaks_on_bare_hosts"
            "$t/test_molecule.py::test_molecule_scenario[bare_hosts-sim_hosts-1500]")
# Kubernetes files that need nothing but a simulated cluster of their own.
second_cluster_files=("$t/test_fleet_k8s.py" "$t/test_k8s_diagnose.py" "$t/test_k8s_oci_chart.py")

if [ "${NIMOPS_TEST_SERIAL:-0}" = 1 ]; then
    exec "$py" -m pytest "${args[@]}" "$t"
fi

cache=${NIMOPS_CACHE:-$HOME/.cache/nimops}
mkdir -p build
log=build/integration-hosts.log
lane() {
    echo "[integration] bare-host group"
    "$py" -u -m pytest "${args[@]}" "${host_files[@]}" "${host_cases[@]}"
    local hosts_rc=$?
    echo "[integration] bare-host group rc=$hosts_rc; Kubernetes files on a second simulated cluster follow"
    NIMOPS_TEST_SIM_DIR="$cache/simcluster-tests-b" NIMOPS_TEST_SIM_PORT_OFFSET=3600 \
        "$py" -u -m pytest "${args[@]}" "${second_cluster_files[@]}"
    local second_rc=$?
    echo "[integration] second-cluster group rc=$second_rc"
    [ "$hosts_rc" = 0 ] && [ "$second_rc" = 0 ]
}
# Job control puts the lane in a process group of its own, so an interruption can stop all of it.
set -m
lane </dev/null >"$log" 2>&1 &
lane_pid=$!
set +m
# Stop the background lane too when this one is interrupted.
trap 'kill -- -"$lane_pid" 2>/dev/null' INT TERM
echo "[integration] background lane running (pid $lane_pid, log $log): the bare-host group, then" \
     "${second_cluster_files[*]##*/} on a second simulated cluster; the other files follow here"

ignores=()
for f in "${host_files[@]}" "${second_cluster_files[@]}"; do ignores+=(--ignore "$f"); done
deselects=()
for c in "${host_cases[@]}"; do deselects+=(--deselect "$c"); done
"$py" -m pytest "${args[@]}" "${ignores[@]}" "${deselects[@]}" "$t"
cluster_rc=$?

wait "$lane_pid"
lane_rc=$?
echo
echo "[integration] ---------------- background lane (build/integration-hosts.log) ----------------"
cat "$log"
echo "[integration] cluster group rc=$cluster_rc, background lane rc=$lane_rc"
[ "$cluster_rc" = 0 ] && [ "$lane_rc" = 0 ]
