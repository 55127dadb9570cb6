#!/usr/bin/env bash
# A private CA and the kfp-notify webhook's serving certificate, for the self-signed overlay
# (manifests/overlays/self-signed). Needs only bash and openssl (1.1.1 or 3.x).
#
# Writes into the overlay's generated/ directory (or --out DIR):
#   ca.crt, ca.key            the CA (kept, so --renew can sign a new serving certificate with it)
#   ca-bundle.crt             the CA certificates the API server trusts (the current CA, plus the
#                             previous one right after --force, so a CA switch has no gap)
#   tls.crt, tls.key          the serving certificate for <service>.<namespace>.svc[.cluster.local]
#   cabundle-patch.yaml       a JSON patch putting ca-bundle.crt into the MutatingWebhookConfiguration
#   hook-key                  with --hook-key: a random hook-signing key (never overwritten)
#
# Safe to re-run: it never replaces what is there unless told to (--renew or --force).
set -euo pipefail
umask 077

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/../manifests/overlays/self-signed/generated"
namespace=kfp-notify
service=kfp-notify-webhook
days=365
ca_days=3650
mode=create
hook_key=0

usage() {
  cat <<'EOF'
Usage: certs/gen.sh [options]

Makes a CA and a serving certificate for the kfp-notify webhook Service, and the caBundle patch the
self-signed overlay applies. Re-running with everything in place changes nothing.

Options:
  --out DIR          where to write (default: manifests/overlays/self-signed/generated)
  --namespace NS     namespace of the webhook Service (default: kfp-notify)
  --service NAME     name of the webhook Service (default: kfp-notify-webhook)
  --days N           serving certificate lifetime in days (default: 365)
  --ca-days N        CA lifetime in days (default: 3650)
  --hook-key         also write DIR/hook-key, a random hook-signing key (kept if it exists)
  --renew            new serving certificate signed by the existing CA (caBundle unchanged)
  --force            new CA and serving certificate; the previous CA stays in the bundle
  -h, --help         this text

Then: kubectl apply -k manifests/overlays/self-signed
EOF
}

die() {
  echo "gen.sh: $*" >&2
  exit 1
}

usage_error() {
  echo "gen.sh: $*" >&2
  echo "Run 'certs/gen.sh --help' for the options." >&2
  exit 2
}

need_value() {
  [ "$#" -ge 2 ] && [ -n "$2" ] || usage_error "$1 needs a value"
}

while [ "$#" -gt 0 ]; do
  case "$1" in
    --out) need_value "$@"; out="$2"; shift 2 ;;
    --namespace) need_value "$@"; namespace="$2"; shift 2 ;;
    --service) need_value "$@"; service="$2"; shift 2 ;;
    --days) need_value "$@"; days="$2"; shift 2 ;;
    --ca-days) need_value "$@"; ca_days="$2"; shift 2 ;;
    --hook-key) hook_key=1; shift ;;
    --renew) [ "$mode" = create ] || usage_error "use either --renew or --force"; mode=renew; shift ;;
    --force) [ "$mode" = create ] || usage_error "use either --renew or --force"; mode=force; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown option: $1" ;;
  esac
done

dns_label='^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'
[[ "$namespace" =~ $dns_label ]] || usage_error "--namespace '$namespace' is not a valid Kubernetes name"
[[ "$service" =~ $dns_label ]] || usage_error "--service '$service' is not a valid Kubernetes name"
[[ "$days" =~ ^[1-9][0-9]*$ ]] || usage_error "--days must be a positive whole number, got '$days'"
[[ "$ca_days" =~ ^[1-9][0-9]*$ ]] || usage_error "--ca-days must be a positive whole number, got '$ca_days'"
command -v openssl >/dev/null 2>&1 || die "openssl not found on PATH"

dns_names=("$service.$namespace.svc" "$service.$namespace.svc.cluster.local")
cert_files=(ca.crt ca.key ca-bundle.crt tls.crt tls.key cabundle-patch.yaml)

mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d "$out/.gen.XXXXXX")"
trap 'rm -rf "$work"' EXIT

new_key() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

new_ca() {
  new_key "$work/ca.key"
  openssl req -x509 -new -sha256 -key "$work/ca.key" -days "$ca_days" \
    -subj "/O=kfp-notify/CN=kfp-notify webhook CA $(date -u +%Y%m%d%H%M%S)" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$work/ca.crt"
}

# $1, $2: the CA certificate and key to sign with.
new_serving_cert() {
  local san="" name
  for name in "${dns_names[@]}"; do san="${san:+$san,}DNS:$name"; done
  cat >"$work/ext.cnf" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
EOF
  new_key "$work/tls.key"
  openssl req -new -sha256 -key "$work/tls.key" -subj "/O=kfp-notify/CN=${dns_names[0]}" -out "$work/tls.csr"
  openssl x509 -req -sha256 -in "$work/tls.csr" -CA "$1" -CAkey "$2" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -extfile "$work/ext.cnf" \
    -out "$work/tls.crt" 2>/dev/null
}

# $@: the PEM files that make up the bundle, in order.
write_bundle_and_patch() {
  cat "$@" >"$work/ca-bundle.crt"
  {
    echo "# Written by certs/gen.sh: the CA certificates the API server trusts when it calls the webhook."
    echo "- op: add"
    echo "  path: /webhooks/0/clientConfig/caBundle"
    echo "  value: $(openssl base64 -A -in "$work/ca-bundle.crt")"
  } >"$work/cabundle-patch.yaml"
}

install_files() {
  local f
  for f in "$@"; do
    case "$f" in *.key) chmod 600 "$work/$f" ;; *) chmod 644 "$work/$f" ;; esac
    mv -f "$work/$f" "$out/$f"
  done
}

# Why the certificate in $out cannot be kept as it is, or nothing.
problem_with_existing() {
  local name
  openssl verify -CAfile "$out/ca-bundle.crt" "$out/tls.crt" >/dev/null 2>&1 ||
    { echo "tls.crt does not verify against ca-bundle.crt"; return; }
  [ "$(openssl pkey -in "$out/tls.key" -pubout 2>/dev/null)" = "$(openssl x509 -in "$out/tls.crt" -noout -pubkey)" ] ||
    { echo "tls.key does not belong to tls.crt"; return; }
  for name in "${dns_names[@]}"; do
    [[ "$(openssl x509 -in "$out/tls.crt" -noout -checkhost "$name")" == *" does match "* ]] ||
      { echo "tls.crt is not valid for $name (made for another --service or --namespace?)"; return; }
  done
}

present=()
missing=()
for f in "${cert_files[@]}"; do
  if [ -e "$out/$f" ]; then present+=("$f"); else missing+=("$f"); fi
done

case "$mode" in
  create)
    if [ "${#missing[@]}" -eq 0 ]; then
      why="$(problem_with_existing)"
      [ -z "$why" ] || die "refusing to overwrite $out: $why. Run with --renew (keep the CA) or --force (new CA)."
      openssl x509 -in "$out/tls.crt" -noout -checkend $((30 * 86400)) >/dev/null ||
        echo "gen.sh: warning: $out/tls.crt expires within 30 days; run certs/gen.sh --renew" >&2
      echo "gen.sh: $out already holds a valid certificate for ${dns_names[0]}; nothing to do" >&2
    elif [ "${#present[@]}" -gt 0 ]; then
      die "refusing to overwrite $out: it has ${present[*]} but not ${missing[*]}. Run with --force to start over."
    else
      new_ca
      new_serving_cert "$work/ca.crt" "$work/ca.key"
      write_bundle_and_patch "$work/ca.crt"
      install_files "${cert_files[@]}"
      echo "gen.sh: wrote a new CA and serving certificate to $out" >&2
    fi
    ;;
  renew)
    [ -e "$out/ca.crt" ] && [ -e "$out/ca.key" ] ||
      die "--renew signs with the existing CA, but $out has no ca.crt and ca.key; run without --renew first"
    new_serving_cert "$out/ca.crt" "$out/ca.key"
    if [ -e "$out/ca-bundle.crt" ]; then cp "$out/ca-bundle.crt" "$work/bundle.in"; else cp "$out/ca.crt" "$work/bundle.in"; fi
    write_bundle_and_patch "$work/bundle.in"
    install_files tls.key tls.crt ca-bundle.crt cabundle-patch.yaml
    echo "gen.sh: wrote a new serving certificate (same CA) to $out" >&2
    ;;
  force)
    new_ca
    new_serving_cert "$work/ca.crt" "$work/ca.key"
    # Pods keep serving the old certificate until kubelet refreshes the mounted Secret; trusting both
    # CAs until the next rotation means the API server accepts either meanwhile.
    if [ -e "$out/ca.crt" ] && ! cmp -s "$out/ca.crt" "$work/ca.crt"; then
      write_bundle_and_patch "$work/ca.crt" "$out/ca.crt"
    else
      write_bundle_and_patch "$work/ca.crt"
    fi
    install_files "${cert_files[@]}"
    echo "gen.sh: wrote a new CA and serving certificate to $out" >&2
    ;;
esac

if [ "$hook_key" -eq 1 ]; then
  if [ -e "$out/hook-key" ]; then
    echo "gen.sh: kept the existing hook key $out/hook-key" >&2
  else
    openssl rand -base64 32 >"$work/hook-key"
    chmod 600 "$work/hook-key"
    mv "$work/hook-key" "$out/hook-key"
    echo "gen.sh: wrote a new hook key to $out/hook-key" >&2
  fi
fi
