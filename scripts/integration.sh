#!/usr/bin/env bash
# make integration: the integration suites in two groups side by side, each spending most of its time waiting on
# real processes, so together they take about as long as the longer one alone.
# - The cluster group: most of the simulated cluster's suites, on the suites' own sim (conftest.TEST_SIM_ENV).
# - The hosts group, in the background: the bare-host tests (simulated hosts, which need none of the Go builds, so
#   they start at once, even while those builds run).
# Then each group takes cluster suites from one shared queue (longest first), each file on the group's own sim (the
# hosts group's has its own state dir, ports shifted by 5000 more), until the queue is empty. So the groups end at
# about the same time whether the cluster group first waited for a cold Go build or not.
# The hosts group's output goes to build/integration-hosts.log (printed when it ends); the exit status is non-zero
# when any part fails. NIMOPS_TEST_SERIAL=1 runs everything as one pytest session instead.
set -uo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$self")/.." || exit 1
py=.venv/bin/python
args=(-q --durations=25 -p no:cacheprovider)
t=tests/integration
# The bare-host part: whole files, and the bare-host cases of files that also test the cluster.
host_files=("$t/test_docker_deploy.py" "$t/test_docker_engine.py" "$t/test_docker_host_options.py" "$t/test_docker_nim.py"
            "$t/test_docker_security.py" "$t/test_faults_hosts.py" "$t/test_fleet_docker.py")
host_cases=("$t/test_awx_jobs.py::test_docker_templates_on_the_sim_hosts"
            "$t/test_leak_scan.py::test_no_secret_leaks_on_bare_hosts"
            "$t/test_molecule.py::test_molecule_scenario[bare_hosts-sim_hosts-1500]")
# The shared queue: cluster suites that need nothing but a sim, about a third of the cluster suites' time, longest
# first (as the "seconds per test file" summaries show them) so that the groups' last files are short ones.
queue=("$t/test_bad_inputs.py" "$t/test_k8s_seed_configs.py" "$t/test_fleet_k8s.py" "$t/test_k8s_preflight.py"
       "$t/test_demo.py" "$t/test_k8s_diagnose.py" "$t/test_k8s_secret_leaks.py" "$t/test_collection_install.py"
       "$t/test_k8s_oci_chart.py" "$t/test_k8s_chart_contract.py" "$t/test_k8s_lws_install.py")
cache=${NIMOPS_CACHE:-$HOME/.cache/nimops}
qdir=build/integration-queue
log=build/integration-hosts.log

# take_queue GROUP: runs, one pytest session each, the queued files this group claims first (mkdir is the atomic
# claim); non-zero when any of them failed. The group's sim stays up between the sessions (NIMOPS_SIM_KEEP).
take_queue() {
    local rc=0 f
    for f in "${queue[@]}"; do
        mkdir "$qdir/${f##*/}" 2>/dev/null || continue
        echo "[integration] $1 group takes $f from the queue (after $(( $(date +%s) - start )) s)"
        NIMOPS_SIM_KEEP=1 "$py" -u -m pytest "${args[@]}" "$f" || rc=1
    done
    return "$rc"
}

# run_group GROUP FIRST-PART-ARGS...: the group's own part, then the queue, then stops the group's sim unless it was
# already running before (a sim someone keeps up is left as found).
run_group() {
    local group=$1 sim_env sim_was_up=0 first_rc queue_rc
    shift
    sim_env=(NIMOPS_SIM_DIR="${NIMOPS_TEST_SIM_DIR:-$cache/simcluster-tests}"
             NIMOPS_SIM_PORT_OFFSET="${NIMOPS_TEST_SIM_PORT_OFFSET:-3500}")
    env "${sim_env[@]}" "$py" tests/simcluster/simcluster.py status --json >/dev/null 2>&1 && sim_was_up=1
    if [ "$group" = hosts ]; then
        "$py" -u -m pytest "${args[@]}" "$@"; first_rc=$?
        echo "[integration] bare-host part rc=$first_rc after $(( $(date +%s) - start )) s; cluster suites from the queue follow"
        tests/simcluster/build.sh && take_queue "$group"; queue_rc=$?
    elif tests/simcluster/build.sh; then
        NIMOPS_SIM_KEEP=1 "$py" -m pytest "${args[@]}" "$@"; first_rc=$?
        take_queue "$group"; queue_rc=$?
    else
        first_rc=1 queue_rc=1
    fi
    [ "$sim_was_up" = 1 ] || env "${sim_env[@]}" "$py" tests/simcluster/simcluster.py down >/dev/null 2>&1
    echo "[integration] $group group done after $(( $(date +%s) - start )) s"
    [ "$first_rc" = 0 ] && [ "$queue_rc" = 0 ]
}

if [ "${1:-}" = --hosts-group ]; then
    shift
    start=$1 qdir=$2
    shift 2
    run_group hosts "$@"
    exit
fi

if [ "${NIMOPS_TEST_SERIAL:-0}" = 1 ]; then
    tests/simcluster/build.sh || exit 1
    exec "$py" -m pytest "${args[@]}" "$t"
fi

mkdir -p build
rm -rf "$qdir" && mkdir -p "$qdir"
start=$(date +%s)
NIMOPS_TEST_SIM_DIR=${NIMOPS_TEST_SIM_DIR:-$cache/simcluster-tests}-2 \
NIMOPS_TEST_SIM_PORT_OFFSET=$(( ${NIMOPS_TEST_SIM_PORT_OFFSET:-3500} + 5000 )) \
    setsid bash "$self" --hosts-group "$start" "$qdir" "${host_files[@]}" "${host_cases[@]}" </dev/null >"$log" 2>&1 &
hosts_pid=$!
# Stop the background group too when this one is interrupted.
trap 'kill -- -"$hosts_pid" 2>/dev/null' INT TERM
echo "[integration] hosts group running in the background (pid $hosts_pid, log $log); the cluster group follows"

ignores=()
for f in "${host_files[@]}" "${queue[@]}"; do ignores+=(--ignore "$f"); done
deselects=()
for c in "${host_cases[@]}"; do deselects+=(--deselect "$c"); done
run_group cluster "${ignores[@]}" "${deselects[@]}" "$t"
cluster_rc=$?

wait "$hosts_pid"
hosts_rc=$?
echo
echo "[integration] ---------------- hosts group ($log) ----------------"
cat "$log"
echo "[integration] cluster group rc=$cluster_rc, hosts group rc=$hosts_rc"
[ "$cluster_rc" = 0 ] && [ "$hosts_rc" = 0 ]
