#!/usr/bin/env bash
# Installs the system programs the test suite starts for real, where missing (Debian/Ubuntu):
# redis-server, nginx, promtool (prometheus), docker-compose (config validation only),
# fail2ban (fail2ban-regex), openssl (test certificates), curl (an upload sent as curl sends it), envsubst (Nginx templates), Debian's
# python3 with cryptography and yaml (certificate bootstrap, compose checks), python3-venv (Open WebUI's
# virtual environment). Runs before every `npm test`; a
# no-op when everything is present.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || need+=(nginx)
command -v promtool >/dev/null || need+=(prometheus)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v fail2ban-regex >/dev/null || need+=(fail2ban)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v envsubst >/dev/null || need+=(gettext-base)
/usr/bin/python3 -c 'import cryptography, yaml' 2>/dev/null || need+=(python3-cryptography python3-yaml)
# The virtual environment Open WebUI is installed in (scripts/install-open-webui.sh).
/usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "The tests need: ${need[*]}. Install them with: apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi
echo "installing test dependencies: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts some of these as services on install; the tests start their own on free ports.
for svc in redis-server nginx prometheus fail2ban; do $sudo service "$svc" stop >/dev/null 2>&1 || true; done
