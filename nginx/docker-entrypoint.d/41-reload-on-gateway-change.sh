#!/bin/sh
# Run by the official nginx image's entrypoint before nginx starts (mounted by docker-compose.yml).
# Nginx resolves the gateway's upstream block once, when it loads its configuration: this watcher
# reloads it when the set of gateway replicas Docker's DNS names changes (`docker compose up
# --scale gateway=N`, a recreated container with a new address). A reload keeps open connections
# and streams; a failed reload (the name momentarily unresolvable) keeps the running configuration.
set -eu

host="${NGINX_GATEWAY_UPSTREAM:?}"
host="${host%:*}"
interval="${NGINX_GATEWAY_CHECK_SECONDS:-10}"

# Every IPv4 address of the name: getent where it lists them all (glibc), busybox's nslookup else.
addresses() {
  {
    getent ahostsv4 "$host" 2>/dev/null | awk '{ print $1 }'
    nslookup "$host" 2>/dev/null | awk '/^Name:/ { named = 1; next } named && /^Address/ { print $NF }'
  } | grep -E '^[0-9]+(\.[0-9]+){3}$' | sort -u | tr '\n' ' '
}

(
  last="$(addresses)"
  while sleep "$interval"; do
    now="$(addresses)"
    if [ -n "$now" ] && [ "$now" != "$last" ]; then
      echo "$0: gateway replicas changed ($last-> $now), reloading nginx" >&2
      nginx -s reload || echo "$0: reload failed, keeping the running configuration" >&2
      last="$now"
    fi
  done
) &
