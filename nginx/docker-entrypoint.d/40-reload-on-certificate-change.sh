#!/bin/sh
# Run by the official nginx image's entrypoint before nginx starts (mounted by docker-compose.yml).
# Starts a background watcher that reloads nginx when the certificate changes: after certbot's
# renewal (the certbot container has no way to signal this one) and after the first-certificate
# bootstrap replaced the temporary self-signed certificate. A reload keeps open connections.
set -eu

cert="${NGINX_TLS_DIR:?}/fullchain.pem"
interval="${NGINX_CERT_CHECK_SECONDS:-300}"

fingerprint() {
  # -L: live/DOMAIN/fullchain.pem is a symlink into archive/; certbot renews by re-pointing it.
  stat -L -c '%Y %s %i' "$cert" 2>/dev/null || echo missing
}

(
  last="$(fingerprint)"
  while sleep "$interval"; do
    now="$(fingerprint)"
    if [ "$now" != "$last" ] && [ "$now" != missing ]; then
      echo "$0: certificate changed, reloading nginx" >&2
      nginx -s reload || echo "$0: reload failed, keeping the running configuration" >&2
      last="$now"
    fi
  done
) &
