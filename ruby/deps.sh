#!/usr/bin/env bash
# Install what the Ruby gem needs to build and test, from Debian's packages (RubyGems.org is
# not used): Ruby 3.1 with headers, libclang (rb-sys's bindgen), ruby-pg, ActiveRecord 6.1 and
# minitest. Run outside the loopback-only test namespace (build.sh and test.sh do).
set -euo pipefail
need=()
command -v ruby >/dev/null 2>&1 && [ -f "$(ruby -e 'print RbConfig::CONFIG["rubyhdrdir"]' 2>/dev/null)/ruby.h" ] || need+=(ruby-dev)
command -v gem >/dev/null 2>&1 || need+=(ruby-dev)
# bindgen (rb-sys) loads libclang.so itself (libclang-cpp is another library).
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || need+=(libclang-dev)
check() { ruby -e "require '$1'" >/dev/null 2>&1; }
command -v ruby >/dev/null 2>&1 || need+=(ruby-pg ruby-activerecord ruby-minitest)
if command -v ruby >/dev/null 2>&1; then
  check pg || need+=(ruby-pg)
  check active_record || need+=(ruby-activerecord)
  check minitest || need+=(ruby-minitest)
fi
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "ruby deps: apt-get install ${need[*]}"
  if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
