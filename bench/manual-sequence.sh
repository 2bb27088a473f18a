#!/usr/bin/env bash
# The seed guide's manual install, scripted as an operator would type it (the baseline deploy-nim.yml is
# compared with): LWS manifests applied server-side, namespace, secrets, the RWX model cache PVC, helm repo add,
# helm install with the same values the playbook rendered, then a wait on the LeaderWorkerSet.
#
# Environment: KUBECONFIG, NS, RELEASE, VALUES (values file), REPO_URL, CHART_VERSION, HELM (binary),
# HELM_HOME_DIR, LWS_MANIFESTS, NGC_API_KEY (read from the environment, given to kubectl/helm on stdin).
# WAIT_MODE: "kubectl" (default: helm install, then kubectl wait --for=condition=Available), "helm"
# (helm install --wait, no kubectl wait), "none" (no wait at all). WAIT_TIMEOUT: seconds (default 600).
set -euo pipefail
: "${KUBECONFIG:?}" "${NS:?}" "${RELEASE:?}" "${VALUES:?}" "${REPO_URL:?}" "${CHART_VERSION:?}" "${HELM:?}"
: "${HELM_HOME_DIR:?}" "${LWS_MANIFESTS:?}" "${NGC_API_KEY:?}"
WAIT_MODE=${WAIT_MODE:-kubectl}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-600}
export KUBECONFIG HELM_CONFIG_HOME="$HELM_HOME_DIR/config" HELM_CACHE_HOME="$HELM_HOME_DIR/cache" \
  HELM_DATA_HOME="$HELM_HOME_DIR/data"

# LWS: installed once per cluster. Re-applying over a running install conflicts with the fields its controller
# manages (webhook caBundle), so an operator checks first, as the playbook's lws_install does.
if ! kubectl get crd leaderworkersets.leaderworkerset.x-k8s.io >/dev/null 2>&1; then
  kubectl apply --server-side -f "$LWS_MANIFESTS" >/dev/null
  kubectl wait --for=condition=Established crd/leaderworkersets.leaderworkerset.x-k8s.io --timeout=120s >/dev/null
  kubectl -n lws-system rollout status deployment/lws-controller-manager --timeout=300s >/dev/null
fi
kubectl create namespace "$NS" >/dev/null
# Secrets from stdin / a 0600 file so the key is on no command line.
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'NGC_API_KEY=%s\n' "$NGC_API_KEY" >"$tmp/ngc.env"
kubectl -n "$NS" create secret generic ngc-api --from-env-file="$tmp/ngc.env" >/dev/null
auth=$(printf '%s' "\$oauthtoken:$NGC_API_KEY" | base64 -w0)
# shellcheck disable=SC2016  # $oauthtoken is the literal registry user name
printf '{"auths":{"nvcr.io":{"username":"$oauthtoken","password":"%s","auth":"%s"}}}' "$NGC_API_KEY" "$auth" \
  >"$tmp/dockerconfig.json"
kubectl -n "$NS" create secret generic nvcr-imagepull --type=kubernetes.io/dockerconfigjson \
  --from-file=.dockerconfigjson="$tmp/dockerconfig.json" >/dev/null
kubectl -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: nim-model-cache}
spec:
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 1000Gi}}
EOF
# shellcheck disable=SC2016  # $oauthtoken is the literal registry user name
printf '%s' "$NGC_API_KEY" | "$HELM" repo add nim-bench "$REPO_URL" --username '$oauthtoken' --password-stdin \
  --force-update >/dev/null
install=("$HELM" install "$RELEASE" nim-bench/nim-llm --version "$CHART_VERSION" -n "$NS" -f "$VALUES")
case "$WAIT_MODE" in
  helm) "${install[@]}" --wait --timeout "${WAIT_TIMEOUT}s" ;;
  kubectl)
    "${install[@]}" >/dev/null
    kubectl -n "$NS" wait --for=condition=Available "leaderworkerset/${LWS_NAME:-$RELEASE-nim-llm}" --timeout="${WAIT_TIMEOUT}s"
    ;;
  none) "${install[@]}" >/dev/null ;;
  *) echo "WAIT_MODE must be kubectl, helm or none" >&2; exit 2 ;;
esac
