#!/bin/sh
# Regenerates iptables-save.golden and ip6tables-save.golden from
# golden.rules and golden6.rules with the real iptables-legacy, inside a
# private network namespace so the host's own rules are never touched.
set -e
cd "$(dirname "$0")"
NS=sluice-golden-$$
ip netns add "$NS"
trap 'ip netns del "$NS"' EXIT
ip netns exec "$NS" iptables-legacy-restore < golden.rules
ip netns exec "$NS" iptables-legacy-save > iptables-save.golden
ip netns exec "$NS" ip6tables-legacy-restore < golden6.rules
ip netns exec "$NS" ip6tables-legacy-save > ip6tables-save.golden
