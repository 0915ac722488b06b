#!/usr/bin/env bash
dir=${1:?dir}
[ -f "$dir/emu/emulator.pid" ] && kill "$(cat "$dir/emu/emulator.pid")" 2>/dev/null
"$(dirname "$0")/pg.sh" stop "$dir/pg"
exit 0
