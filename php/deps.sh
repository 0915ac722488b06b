#!/usr/bin/env bash
# Install the PHP build tools and test dependencies that are missing (Debian packages, apt-get):
# php8.2-dev (php-config and headers for ext-php-rs), libclang-dev (bindgen), php8.2-cli,
# php8.2-pgsql (pgsql and pdo_pgsql), phpunit, php8.2-fpm (the shared-cache test with real
# PHP-FPM children, tests/servers) and Debian's Laravel database layer (php-illuminate-database,
# php-illuminate-container) for the Laravel connector's tests. Packagist is not used. build.sh
# calls it, outside the loopback-only test namespace, so that test.sh finds everything there.
set -euo pipefail
pkgs=(php8.2-dev php8.2-cli php8.2-pgsql php8.2-fpm libclang-dev phpunit php-illuminate-database php-illuminate-container)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "php deps: apt-get install ${missing[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  # Another apt-get may be running (the other bindings' deps.sh): wait for its lock.
  $sudo apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
