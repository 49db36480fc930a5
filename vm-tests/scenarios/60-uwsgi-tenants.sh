# Two tenants' real uWSGI python apps in tyrant mode with every namespace: alice (2001) and bob
# (2002) each drop an ini (plugins = python3, an http-socket on a port of
# --emperor-tyrant-ports, wsgi-file = fixtures/uwsgi/app.py, a master and two workers), and the
# emperor runs each with Debian's uWSGI as its owner. Each app answers on its host port from a
# net namespace of its own, the worker that answers runs as the owner; the two vassals share no
# pid, net, ipc, uts or mnt namespace with each other or the host; each app sees only its own
# vassal's processes in /proc, and its SIGKILLs to the other tenant's host pids fail with ESRCH
# while signal 0 to its own master works (the control); removing alice's config stops every
# process of hers and leaves bob's as they were.
. /vm/scenarios/lib.sh

STATS=127.0.0.1:9191
DIR=/tmp/vassals
SUT_LOG=/tmp/emperor.log
TENANTS="alice bob"

uid_of() { case $1 in alice) echo 2001 ;; bob) echo 2002 ;; esac; }
port_of() { case $1 in alice) echo 8001 ;; bob) echo 8002 ;; esac; }
other_of() { case $1 in alice) echo bob ;; bob) echo alice ;; esac; }

# get TENANT PATH: the body of GET PATH from TENANT's app, or status 1. The runtime binds the
# socket on the host's loopback before it enters the vassal's net namespace, so the host reaches
# it there. (busybox 1.35's wget -T segfaults: timeout(1) bounds it instead.)
get() { timeout 5 wget -q -O - "http://127.0.0.1:$(port_of "$1")$2" 2>/dev/null; }

# runtime_of TENANT: the pid of TENANT's runtime in the stats last saved in /tmp/stats.json.
runtime_of() { vassal_field /tmp/stats.json "$DIR/$1.ini" pid; }

# host_pid NSPID PID...: which PID has NSPID as its pid in its own (innermost) pid namespace.
host_pid() {
	_nspid=$1
	shift
	for _pid; do
		set -- $(sed -n 's/^NSpid:[[:space:]]*//p' "/proc/$_pid/status" 2>/dev/null)
		eval "_inner=\${$#}"
		[ "$_inner" = "$_nspid" ] && echo "$_pid"
	done
}

# apps_up: both apps answer, each vassal being its runtime, a uWSGI master and two workers.
apps_up() {
	stats "$STATS" > /tmp/stats.json || return 1
	for t in $TENANTS; do
		rt=$(runtime_of "$t")
		[ -n "$rt" ] && [ "$rt" -gt 0 ] || return 1
		[ "$(tree "$rt" | wc -l)" -eq 4 ] || return 1
		get "$t" / > "/tmp/$t.answer" || return 1
	done
}

mkdir -m 1777 "$DIR"
start_sut emperor --emperor "$DIR" --emperor-tyrant --emperor-use-clone fs,net,ipc,pid,uts \
	--emperor-tyrant-ports 8000-8999 --emperor-stats "$STATS" 2> "$SUT_LOG"

# Each tenant writes its config elsewhere and moves it in: it is theirs, and never seen
# half-written.
for t in $TENANTS; do
	as_user "$t" sh -c "printf '%s\n' '[uwsgi]' 'plugins = python3' \
		'http-socket = 127.0.0.1:$(port_of "$t")' 'wsgi-file = $FIXTURES/uwsgi/app.py' \
		'env = TENANT=$t' 'master = true' 'processes = 2' \
		> /tmp/$t.ini && mv /tmp/$t.ini $DIR/$t.ini" || fail "$t cannot drop a config in $DIR"
done
ls -ln "$DIR"

if ! poll 90 apps_up; then
	show_sut
	fail "the two uWSGI apps did not both come up with a master and two workers: $(cat /tmp/stats.json)"
fi
show_sut

for t in $TENANTS; do
	uid=$(uid_of "$t")
	rt=$(runtime_of "$t")
	master=$(children "$rt")
	[ "$(cat "/proc/$master/comm" 2>/dev/null)" = uwsgi ] ||
		fail "$t's runtime $rt has not one uWSGI master as its child: $(describe $(tree "$rt"))"
	eval "rt_$t=$rt master_$t=$master tree_$t='$(echo $(tree "$rt"))'"
	# Runtime, master and workers run as the owner on the host; master and workers are the
	# real uWSGI, on the config the emperor feeds it.
	for pid in $(tree "$rt"); do
		assert_eq "$uid $uid $uid $uid" "$(uids "$pid")" "host uids of $t's $(describe "$pid")"
		[ "$pid" = "$rt" ] && continue
		grep -q "emperor://$t.ini" "/proc/$pid/cmdline" ||
			fail "$t's $(describe "$pid")is not uWSGI run with --ini emperor://$t.ini"
	done

	# The app says who answered: its owner's ids, and its pid in the vassal's pid namespace,
	# which is one of the master's workers on the host.
	answer=$(cat "/tmp/$t.answer")
	case $answer in
	"$t uid=$uid gid=$uid pid="*) ;;
	*) fail "$t's app answered '$answer', expected '$t uid=$uid gid=$uid pid=N'" ;;
	esac
	nspid=${answer##*pid=}
	worker=$(host_pid "$nspid" $(children "$master"))
	[ -n "$worker" ] || fail "no worker of $t's uWSGI master $master is pid $nspid in its pid namespace: $(describe $(tree "$rt"))"
	log "$t: runtime $rt, uWSGI master $master, workers $(children "$master"); answer '$answer' from worker $worker (uids $(uids "$worker"))"
done

# Namespaces: alice's, bob's and the host's differ pairwise; each vassal's uWSGI processes share
# theirs.
for ns in pid net ipc uts mnt; do
	host=$(readlink "/proc/1/ns/$ns")
	alice=$(readlink "/proc/$master_alice/ns/$ns")
	bob=$(readlink "/proc/$master_bob/ns/$ns")
	[ -n "$alice" ] && [ -n "$bob" ] || fail "cannot read the $ns namespaces of the uWSGI masters"
	[ "$alice" != "$host" ] || fail "alice's uWSGI is in the host's $ns namespace $host"
	[ "$bob" != "$host" ] || fail "bob's uWSGI is in the host's $ns namespace $host"
	[ "$alice" != "$bob" ] || fail "alice and bob share the $ns namespace $alice"
	for t in $TENANTS; do
		eval "master=\$master_$t"
		for worker in $(children "$master"); do
			assert_eq "$(readlink "/proc/$master/ns/$ns")" "$(readlink "/proc/$worker/ns/$ns")" "$ns namespace of $t's worker $worker"
		done
	done
	log "$ns: host $host, alice $alice, bob $bob"
done

# Each app probes the other tenant: what it sees in /proc, and SIGKILL to each of the other
# vassal's host pids (runtime, master, workers).
for t in $TENANTS; do
	o=$(other_of "$t")
	uid=$(uid_of "$t")
	eval "own=\$tree_$t theirs=\$tree_$o"
	get "$t" "/probe?pids=$(echo "$theirs" | tr ' ' ',')" > "/tmp/$t.probe" ||
		fail "$t's app did not answer the probe"
	log "$t's app, given $o's host pids $theirs:"
	sed 's/^/    /' "/tmp/$t.probe"
	# The control: a signal the app may send is sent, so a refusal below means something.
	grep -q "^me uid=$uid .* signal 0 to master: ALLOWED\$" "/tmp/$t.probe" ||
		fail "$t's app could not signal its own master: $(head -1 "/tmp/$t.probe")"
	# Only its own pid namespace: as many processes as its vassal has on the host, all its
	# owner's.
	set -- $own
	assert_eq $# "$(grep -c '^see ' "/tmp/$t.probe")" "processes $t's app sees in /proc (its vassal on the host: $own)"
	if strangers=$(awk -v uid="$uid" '$1 == "see" && $4 != uid' "/tmp/$t.probe" | grep .); then
		fail "$t's app sees processes not its owner's: $strangers"
	fi
	set -- $theirs
	assert_eq $# "$(grep -c '^kill [0-9]*: ESRCH$' "/tmp/$t.probe")" "SIGKILLs from $t's app to $o's host pids that failed with ESRCH"
	assert_eq "$theirs" "$(echo $(tree "$(eval echo \$rt_$o)"))" "$o's processes after $t's SIGKILLs"
done

# Removing alice's config stops her vassal: no process of hers is left, her port is closed, and
# bob's processes are the same and still serve.
rm "$DIR/alice.ini"
log "removed $DIR/alice.ini"
alices() {
	for pid in $(sut_pids); do
		set -- $(uids "$pid")
		[ "$1" = 2001 ] && echo "$pid"
	done
}
alice_gone() { [ -z "$(alices)" ] && ! get alice / > /dev/null; }
if ! poll 30 alice_gone; then
	show_sut
	fail "30 s after removing alice's config, left of hers: $(describe $(alices)); port 8001 answers: $(get alice /)"
fi
log "alice's vassal stopped: none of $tree_alice left, port 8001 closed"
stats "$STATS" > /tmp/stats.json || fail "no stats after the removal"
[ -z "$(runtime_of alice)" ] || fail "the removed vassal is still in the stats: $(cat /tmp/stats.json)"
assert_eq "$tree_bob" "$(echo $(tree "$rt_bob"))" "bob's processes after alice's removal"
case $(get bob /) in
"bob uid=2002 "*) ;;
*) fail "bob's app does not answer after alice's removal" ;;
esac

end_sut TERM 30
show_sut_log
pass
