#!/bin/sh
# Seed numba's cache (compiled at image build time) into the writable NUMBA_CACHE_DIR, then
# exec `flashalpha "$@"`: it becomes PID 1 itself, so SIGTERM reaches the worker.
set -eu
seed="${FLASHALPHA_NUMBA_SEED:-/opt/numba-cache}"
if [ -n "${NUMBA_CACHE_DIR:-}" ] && [ -d "$seed" ] && [ ! -e "$NUMBA_CACHE_DIR/.seeded" ]; then
    mkdir -p "$NUMBA_CACHE_DIR"
    cp -R "$seed/." "$NUMBA_CACHE_DIR/"
    touch "$NUMBA_CACHE_DIR/.seeded"
fi
exec flashalpha "$@"
