#!/usr/bin/env bash
# Install the Python build tools and test dependencies that are missing (from PyPI, with pip).
# build.sh calls it, outside the loopback-only namespace, so that test.sh finds everything there.
set -euo pipefail
missing=()
python3 -c 'import maturin' 2>/dev/null || missing+=("maturin>=1.16,<2")
python3 -c 'import ziglang' 2>/dev/null || missing+=(ziglang)
python3 -c 'import pytest' 2>/dev/null || missing+=(pytest)
python3 -c 'import psycopg2' 2>/dev/null || missing+=(psycopg2-binary)
python3 -c 'import psycopg' 2>/dev/null || missing+=("psycopg[binary]")
python3 -c 'import psycopg_pool' 2>/dev/null || missing+=(psycopg_pool)
python3 -c 'import asyncpg' 2>/dev/null || missing+=(asyncpg)
python3 -c 'import sqlalchemy' 2>/dev/null || missing+=(sqlalchemy)
python3 -c 'import greenlet' 2>/dev/null || missing+=(greenlet)
python3 -c 'import django' 2>/dev/null || missing+=(django)
python3 -c 'import gunicorn' 2>/dev/null || missing+=(gunicorn)
if [ ${#missing[@]} -gt 0 ]; then
  echo "python deps: pip install ${missing[*]}"
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --retries 1 "${missing[@]}"
fi
