#!/usr/bin/env bash
# tests/platforms/sdist.sh: the Python sdist (dist/python/pgentra-<v>.tar.gz) builds a working
# wheel from nothing but itself, as `pip install` does on a platform with no wheel: pip unpacks it
# into an empty folder and maturin's build backend compiles it with cargo (here offline, from
# cargo's cache: the test namespace has no network; --no-build-isolation, so the maturin already
# installed is the backend). The wheel must be tagged for this machine as built from source
# (linux_<arch>), load from where it was installed (not dist/'s wheel), and pass
# python/tests/test_core.py (every conformance vector byte for byte) and test_tokens.py (tokens,
# a passwordless login as the app's role with psycopg2). Run under the harness (make test-platforms).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml")
sdist="$repo/dist/python/pgentra-$version.tar.gz"
fail() { echo "sdist: $*" >&2; exit 1; }
[ -f "$sdist" ] || fail "no $sdist: run scripts/build-platforms.sh (make build does)"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
t=$SECONDS
# The crates it shares with the x86_64 build come compiled from cargo's target folder (its own
# sources compile anew: their path differs).
CARGO_NET_OFFLINE=true CARGO_TARGET_DIR="$target" PIP_ROOT_USER_ACTION=ignore \
  python3 -m pip wheel -q --disable-pip-version-check --no-deps --no-index --no-build-isolation \
  -w "$tmp/wheel" "$sdist" || fail "pip could not build a wheel from $sdist"
whl=$(ls "$tmp"/wheel/pgentra-"$version"-*.whl 2>/dev/null) || fail "pip built no pgentra wheel"
case "$(basename "$whl")" in
  *-linux_"$(uname -m)".whl) ;;
  *) fail "the wheel built from source is $(basename "$whl"), not tagged linux_$(uname -m)" ;;
esac
echo "sdist: $(basename "$sdist") built $(basename "$whl") in $((SECONDS - t)) s"
PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-index --no-deps --target "$tmp/site" "$whl"
loaded=$(cd "$tmp" && PYTHONPATH="$tmp/site" python3 -c 'import pgentra; print(pgentra.__file__)')
[ "$loaded" = "$tmp/site/pgentra/__init__.py" ] || fail "import pgentra loaded $loaded, not the wheel built from the sdist"
cd "$repo"
PYTHONPATH="$tmp/site" PYTHONDONTWRITEBYTECODE=1 python3 -m pytest -q -p no:cacheprovider -p no:asyncio \
  python/tests/test_core.py python/tests/test_tokens.py
echo "sdist: passed in $SECONDS s"
