#!/usr/bin/env bash
# make integration: the integration suites in two groups side by side - the bare-host tests (simulated hosts) and
# the rest (the simulated cluster). The groups share no test bed, and each spends most of its time waiting on real
# processes, so together they take about as long as the longer one alone. The bare-host group's output goes to
# build/integration-hosts.log (printed when it ends); the exit status is non-zero when either group fails.
# NIMOPS_TEST_SERIAL=1 runs everything as one pytest session instead.
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

if [ "${NIMOPS_TEST_SERIAL:-0}" = 1 ]; then
    exec "$py" -m pytest "${args[@]}" "$t"
fi

mkdir -p build
log=build/integration-hosts.log
setsid "$py" -u -m pytest "${args[@]}" "${host_files[@]}" "${host_cases[@]}" </dev/null >"$log" 2>&1 &
hosts_pid=$!
# Stop the background group too when this one is interrupted.
trap 'kill -- -"$hosts_pid" 2>/dev/null' INT TERM
echo "[integration] bare-host group running in the background (pid $hosts_pid, log $log); the cluster group follows"

ignores=()
for f in "${host_files[@]}"; do ignores+=(--ignore "$f"); done
deselects=()
for c in "${host_cases[@]}"; do deselects+=(--deselect "$c"); done
"$py" -m pytest "${args[@]}" "${ignores[@]}" "${deselects[@]}" "$t"
cluster_rc=$?

wait "$hosts_pid"
hosts_rc=$?
echo
echo "[integration] ---------------- bare-host group (build/integration-hosts.log) ----------------"
cat "$log"
echo "[integration] cluster group rc=$cluster_rc, bare-host group rc=$hosts_rc"
[ "$cluster_rc" = 0 ] && [ "$hosts_rc" = 0 ]
