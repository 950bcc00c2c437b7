#!/usr/bin/env bash
# The first Let's Encrypt certificate, in one command, from the checkout directory:
#
#   ./deploy/bootstrap-cert.sh            # real certificate
#   ./deploy/bootstrap-cert.sh --staging  # Let's Encrypt's staging CA: for a dry run (no rate limits)
#
# Nginx cannot start without a certificate and certbot's webroot challenge needs Nginx running, so:
#   1. a temporary self-signed certificate (deploy/temporary-cert.py, run in the certbot container),
#   2. Nginx started with it (it serves /.well-known/acme-challenge/ on port 80),
#   3. certbot's webroot challenge gets the real certificate,
#   4. Nginx reloaded onto it.
# Needs DOMAIN and LETSENCRYPT_EMAIL in .env (or the environment), the domain's DNS pointing here
# and port 80 reachable. Running it again when a certificate exists does nothing.
set -euo pipefail

cd "$(dirname "$0")/.."

staging=()
case "${1:-}" in
  "") ;;
  --staging) staging=(--staging) ;;
  *) echo "usage: $0 [--staging]" >&2; exit 2 ;;
esac

env_file="${ENV_FILE:-.env}"

# A value from .env when the environment does not set it (docker compose reads .env the same way).
env_value() {
  local name="$1"
  if [[ -n "${!name:-}" ]]; then printf '%s' "${!name}"; return; fi
  [[ -f "$env_file" ]] || return 0
  sed -n "s/^${name}=//p" "$env_file" | tail -n 1 | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'$/\1/"
}

DOMAIN="$(env_value DOMAIN)"
EMAIL="$(env_value LETSENCRYPT_EMAIL)"
[[ -n "$DOMAIN" ]] || { echo "$0: set DOMAIN in .env (the public host name)" >&2; exit 1; }
[[ -n "$EMAIL" ]] || { echo "$0: set LETSENCRYPT_EMAIL in .env (expiry notices go there)" >&2; exit 1; }

compose() { docker compose "$@"; }
certbot_sh() { compose run --rm -T --entrypoint sh certbot -c "$1"; }

live="/etc/letsencrypt/live/$DOMAIN"

if certbot_sh "test -f '/etc/letsencrypt/renewal/$DOMAIN.conf'"; then
  echo "A certificate for $DOMAIN exists already; certbot renews it. Nothing to do."
  exit 0
fi

temporary_certificate() {
  compose run --rm -T --entrypoint python3 certbot - "$live" < deploy/temporary-cert.py
}

echo "1/4 Temporary self-signed certificate for $DOMAIN"
temporary_certificate

echo "2/4 Starting Nginx"
compose up -d nginx
for attempt in $(seq 1 30); do
  if compose exec -T nginx wget -q -O /dev/null http://127.0.0.1/nginx-health 2>/dev/null; then break; fi
  if [[ "$attempt" == 30 ]]; then echo "$0: Nginx did not come up: docker compose logs nginx" >&2; exit 1; fi
  sleep 1
done

echo "3/4 Let's Encrypt webroot challenge for $DOMAIN"
# certbot refuses to write into a live/ directory it did not create: remove the temporary one.
certbot_sh "rm -rf '$live' '/etc/letsencrypt/archive/$DOMAIN' '/etc/letsencrypt/renewal/$DOMAIN.conf'"
if ! compose run --rm -T --entrypoint certbot certbot certonly \
    --webroot -w /var/www/certbot \
    -d "$DOMAIN" --email "$EMAIL" \
    --agree-tos --no-eff-email --non-interactive \
    "${staging[@]}"; then
  # Put a certificate back so Nginx still restarts; the site keeps working on plain HTTP redirects.
  temporary_certificate
  echo "$0: certbot failed. Check that $DOMAIN resolves to this host and port 80 is open, then run again." >&2
  exit 1
fi

echo "4/4 Reloading Nginx onto the new certificate"
compose exec -T nginx nginx -s reload
echo "Done: https://$DOMAIN/ . The certbot service renews it; Nginx reloads by itself after a renewal."
