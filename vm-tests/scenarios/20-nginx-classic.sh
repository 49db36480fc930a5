# nginx as a classic vassal in its own namespaces: the emperor (root) clones it into new mount,
# net, ipc, pid and uts namespaces; nginx serves the fixture page inside the vassal's network
# namespace only, and removing the config takes every nginx process away.
. /vm/scenarios/lib.sh

STATS=127.0.0.1:9191
CONFIG=/tmp/vassals/nginx.ini
SUT_LOG=/tmp/emperor.log
mkdir /tmp/vassals
cat > /tmp/nginx.ini <<'INI'
[uwsgi]
privileged-binary-patch-arg = nginx -g "daemon off;" -c /vm/fixtures/nginx/nginx.conf
INI
mv /tmp/nginx.ini "$CONFIG"
start_sut emperor --emperor /tmp/vassals --emperor-use-clone fs,net,ipc,pid,uts \
	--emperor-stats "$STATS" 2> "$SUT_LOG"

# The runtime's pid from the stats, then its child, the nginx master.
runtime= master=
nginx_master_up() {
	stats "$STATS" > /tmp/stats.json || return 1
	runtime=$(vassal_field /tmp/stats.json "$CONFIG" pid)
	[ -n "$runtime" ] && [ "$runtime" -gt 0 ] || return 1
	master=$(children "$runtime")
	[ -n "$master" ] && [ "$(cat "/proc/$master/comm" 2>/dev/null)" = nginx ]
}
poll 60 nginx_master_up || fail "no nginx master under the vassal's runtime (runtime '$runtime', children '$master'): $(describe $(sut_pids))"
log "runtime $runtime, nginx master $master"

# (busybox 1.35's wget -T segfaults: timeout(1) bounds it instead.)
page=
served_inside() {
	page=$(timeout 5 nsenter -t "$master" -n wget -q -O - http://127.0.0.1:8080/ 2>&1)
	[ "$page" = "hello from the guest" ]
}
poll 30 served_inside || fail "nginx in the vassal's network namespace did not serve the page; last answer: '$page'"
log "served in the vassal's network namespace: $page"
show_sut

# The page exists only in the vassal's network namespace: on the host's loopback nothing listens.
if outside=$(timeout 5 wget -q -O - http://127.0.0.1:8080/ 2>&1); then
	fail "the host's network namespace serves port 8080 too: '$outside'"
fi

# Every namespace of the vassal (runtime and nginx) differs from the emperor's.
for ns in net pid uts mnt ipc; do
	emperor_ns=$(readlink "/proc/$SUT_PID/ns/$ns")
	for pid in "$runtime" "$master"; do
		vassal_ns=$(readlink "/proc/$pid/ns/$ns")
		[ -n "$vassal_ns" ] || fail "cannot read /proc/$pid/ns/$ns"
		[ "$vassal_ns" != "$emperor_ns" ] ||
			fail "$ns namespace of $(describe "$pid")is the emperor's: $vassal_ns"
	done
	log "$ns: emperor $emperor_ns, vassal $(readlink "/proc/$master/ns/$ns")"
done
# nginx's worker is in the same namespaces as its master.
workers=$(children "$master")
[ -n "$workers" ] || fail "nginx master $master has no worker"
for worker in $workers; do
	assert_eq "$(readlink "/proc/$master/ns/net")" "$(readlink "/proc/$worker/ns/net")" "net namespace of worker $worker"
done

rm "$CONFIG"
log "removed $CONFIG"
no_nginx() { [ "$(count_sut nginx)" -eq 0 ] && [ -z "$(vassal_pids)" ]; }
if ! poll 30 no_nginx; then
	show_sut
	fail "30 s after removing the config, left besides the emperor and its helpers: $(describe $(vassal_pids))"
fi
stats "$STATS" > /tmp/stats.json || fail "no stats after the removal"
[ -z "$(vassal_field /tmp/stats.json "$CONFIG" pid)" ] || fail "the removed vassal is still in the stats: $(cat /tmp/stats.json)"

end_sut TERM 30
show_sut_log
pass
