#!/bin/sh
# The emperor over the pool example: four nginx vassals sharing 127.0.0.1:8080.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=/tmp/emperor-pool
mkdir -p "$work/www" "$work/tmp"
echo "hello from the pool" > "$work/www/index.html"
bin=${EMPEROR:-$here/../../target/release/emperor}
exec "$bin" --emperor "$here/vassals" --emperor-control "$work/control.sock" \
    --emperor-stats "$work/stats.sock"
