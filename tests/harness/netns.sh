#!/usr/bin/env bash
# Run a command in a fresh network namespace that has loopback only, so no code path can reach
# a real metadata address (169.254.169.254) or anything else off this machine.
set -euo pipefail
if [ "${PGENTRA_IN_NETNS:-}" = 1 ]; then exec "$@"; fi
# A private mount namespace too: /etc/hosts there maps two Azure-style names to 127.0.0.1, so the
# TLS policy is tested with the names it applies to. The harness's server certificate names the
# first; nothing names the second (a server that must receive no token).
hosts_line="127.0.0.1 pgentra-test.postgres.database.azure.com pgentra-wrongname.postgres.database.azure.com"
exec unshare --net --mount -- env PGENTRA_IN_NETNS=1 HOSTS_LINE="$hosts_line" bash -c '
  ip link set lo up
  hosts=$(mktemp /tmp/pgentra-hosts.XXXXXX)
  { cat /etc/hosts 2>/dev/null; echo "$HOSTS_LINE"; } > "$hosts"
  chmod 644 "$hosts"
  [ -e /etc/hosts ] || touch /etc/hosts
  mount --bind "$hosts" /etc/hosts
  unset HOSTS_LINE
  exec "$@"' netns "$@"
