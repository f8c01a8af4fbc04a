#!/bin/sh
# Regenerates golden.save from golden.restore with the real ipset, inside a
# private network namespace so the host's own sets are never touched.
set -e
cd "$(dirname "$0")"
NS=sluice-ipset-golden-$$
ip netns add "$NS"
trap 'ip netns del "$NS"' EXIT
ip netns exec "$NS" ipset restore < golden.restore
ip netns exec "$NS" ipset save > golden.save
