#!/usr/bin/env bash
# Checks the deployment's configuration on the server, with the images the stack runs (no
# promtool, nginx or node needed on the host). Run from the checkout after editing .env, the
# Nginx template or the Prometheus rules, before `docker compose up -d`:
#   ./deploy/check-ops.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "docker compose config (default and observability profile)"
docker compose config -q
docker compose --profile observability config -q

step "gateway configuration from .env (the gateway's own validation)"
docker compose run --rm --no-deps -T --entrypoint node gateway \
  -e "import('./dist/config.js').then((m) => { m.loadConfig(process.env); console.log('gateway configuration ok'); })"

step "prometheus configuration, rules and rule unit tests"
docker compose --profile observability run --rm --no-deps -T \
  -v "$PWD/deploy/prometheus/tests:/etc/prometheus/tests:ro" \
  --entrypoint /bin/sh prometheus -c \
  'promtool check config /etc/prometheus/prometheus.yml && promtool test rules /etc/prometheus/tests/*.test.yml'

step "nginx configuration (rendered from nginx/templates with this .env)"
if [ -n "$(docker compose ps -q nginx 2>/dev/null)" ]; then
  docker compose exec -T nginx nginx -t
else
  echo "nginx is not running: checked on the next start (./deploy/bootstrap-cert.sh or docker compose up -d)"
fi

printf '\nAll checks passed.\n'
