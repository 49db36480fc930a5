# Sourced by every scenario: . /vm/scenarios/lib.sh
# A scenario ends with `pass` or `fail REASON`; /init prints the verdict on the console.
# Waits are bounded polls (wait_until, poll), never bare sleeps.

FIXTURES=/vm/fixtures
VERDICT_FILE=/run/verdict

# log MSG...: a line on the console, stamped with the guest's uptime.
log() {
	read -r _up _ < /proc/uptime
	echo "[$_up] $*"
}

# pass: the scenario passed, unless a fail came first (for example from a subshell).
pass() {
	[ -e "$VERDICT_FILE" ] || echo PASS > "$VERDICT_FILE"
	exit 0
}

# fail REASON...: the scenario failed; the reason is kept to one line. The emperor's log
# (SUT_LOG, when a scenario sends its stderr there) is shown first.
fail() {
	show_sut_log
	log "FAIL: $*"
	[ -e "$VERDICT_FILE" ] || echo "FAIL $*" | tr '\n' ' ' > "$VERDICT_FILE"
	exit 1
}

# assert_eq EXPECTED ACTUAL WHAT
assert_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$1', got '$2'"
}

# now_cs: centiseconds since boot (/proc/uptime always has two decimals).
now_cs() {
	read -r _up _ < /proc/uptime
	echo $((${_up%.*} * 100 + 1${_up#*.} - 100))
}

# poll SECONDS CMD...: run CMD every 0.1 s until it succeeds (status 0) or SECONDS have passed
# (status 1).
poll() {
	_deadline=$(($(now_cs) + $1 * 100))
	shift
	until "$@"; do
		[ "$(now_cs)" -lt "$_deadline" ] || return 1
		sleep 0.1
	done
}

# wait_until SECONDS CMD...: poll, and fail the scenario at the deadline.
wait_until() {
	_seconds=$1
	shift
	poll "$_seconds" "$@" || fail "timed out after ${_seconds}s waiting for: $*"
}

# as_user USER CMD...: run CMD as USER (uid, gid and groups from /etc/passwd and /etc/group).
# busybox's setpriv cannot change ids, its su can; the -- keeps CMD's options from su.
as_user() {
	_user=$1
	shift
	su -s /bin/sh -c 'exec "$@"' -- "$_user" as_user "$@"
}

# start_sut CMD...: start the system under test in the background, in the root cgroup rather
# than the harness's (or in SUT_CGROUP, a cgroup directory, when set), so that sut_pids sees it
# and all it starts. Its pid is in SUT_PID.
start_sut() {
	sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "${SUT_CGROUP:-/sys/fs/cgroup}" "$@" &
	SUT_PID=$!
}

# sut_pids [NAME]: the live processes of the system under test, one pid a line: every process
# outside the harness cgroup that is neither a kernel thread nor a zombie (dead, awaiting its
# reaper); with NAME, only those whose command name (/proc/PID/comm) is NAME.
# Builtins only: under TCG a fork per process would make one call take seconds.
sut_pids() {
	for _dir in /proc/[0-9]*; do
		read -r _cgroup 2>/dev/null < "$_dir/cgroup" || continue
		[ "$_cgroup" = 0::/harness ] && continue
		_name= _state= _ppid=
		while read -r _key _value _rest; do
			case $_key in
			Name:) _name=$_value ;;
			State:) _state=$_value ;;
			PPid:)
				_ppid=$_value
				break
				;;
			esac
		done 2>/dev/null < "$_dir/status"
		_pid=${_dir#/proc/}
		# kthreadd is pid 2, and the parent of every other kernel thread.
		[ "$_pid" = 2 ] || [ "$_ppid" = 2 ] || [ -z "$_ppid" ] && continue
		[ "$_state" = Z ] && continue
		[ -n "$1" ] && [ "$_name" != "$1" ] && continue
		echo "$_pid"
	done
}

# vassal_pids: sut_pids less the emperor and its helpers (its config reader and the reader's
# workers, its clone server, each named with its pid in the emperor's log, SUT_LOG): what its
# vassals have running.
vassal_pids() {
	_helpers=" $SUT_PID $(echo $(sed -n -e 's/.*config reader started pid=\([0-9]*\).*/\1/p' \
		-e 's/.*clone server started pid=\([0-9]*\).*/\1/p' "$SUT_LOG" 2>/dev/null)) "
	for _pid in $(sut_pids); do
		case $_helpers in *" $_pid "*) continue ;; esac
		_ppid=
		while read -r _key _value _rest; do
			[ "$_key" = PPid: ] && _ppid=$_value && break
		done 2>/dev/null < "/proc/$_pid/status"
		# A helper's child (a reader's worker), not a runtime (the emperor's own child).
		[ "$_ppid" != "$SUT_PID" ] && case $_helpers in *" $_ppid "*) continue ;; esac
		echo "$_pid"
	done
}

# count_sut [NAME]: how many sut_pids there are.
count_sut() {
	set -- $(sut_pids "$@")
	echo $#
}

# describe PID...: "PID (parent PPID) COMMAND LINE" for each, on one line, for a fail reason.
describe() {
	for _pid; do
		_ppid=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$_pid/status" 2>/dev/null)
		_cmd=$(tr '\0' ' ' 2>/dev/null < "/proc/$_pid/cmdline")
		printf '%s (parent %s) %s; ' "$_pid" "$_ppid" "$_cmd"
	done
}

# show_sut: the system under test's processes on the console, one a line.
show_sut() {
	for _pid in $(sut_pids); do
		log "  $(describe "$_pid")"
	done
}

# show_sut_log: the emperor's log on the console, when the scenario keeps it in SUT_LOG.
show_sut_log() {
	[ -n "$SUT_LOG" ] && [ -s "$SUT_LOG" ] || return 0
	log "--- emperor log ($SUT_LOG) ---"
	cat "$SUT_LOG"
	log "--- end of emperor log ---"
}

# stats ADDR: the emperor's stats JSON (indented, one key a line), or status 1 when it does not
# answer within 2 s.
stats() {
	timeout 2 emperor stats "$1"
}

# vassal_field FILE CONFIG KEY: KEY (pid, respawns, uid, state...) of the vassal whose config
# is CONFIG in a stats document saved in FILE; nothing when there is no such vassal.
vassal_field() {
	awk -v config="\"config\": \"$2\"" -v key="\"$3\":" '
		index($0, "\"config\":") { inside = index($0, config) > 0 }
		inside && $1 == key { v = $2; sub(/,$/, "", v); gsub(/"/, "", v); print v; exit }
	' "$1"
}

# payload_of STATS CONFIG: sets payload to the pid of CONFIG's payload (the child of its
# runtime) from the stats at STATS; status 1 while it has none.
payload=
payload_of() {
	stats "$1" > /tmp/stats.json || return 1
	_rt=$(vassal_field /tmp/stats.json "$2" pid)
	[ -n "$_rt" ] && [ "$_rt" -gt 0 ] || return 1
	payload=$(children "$_rt")
	[ -n "$payload" ]
}

# children PID: the children of PID (every thread's), space separated.
children() {
	echo $(cat /proc/"$1"/task/*/children 2>/dev/null)
}

# tree PID: PID and all its descendants, one a line.
tree() {
	echo "$1"
	for _child in $(children "$1"); do
		tree "$_child"
	done
}

# uids PID: the Uid line of /proc/PID/status (real, effective, saved, filesystem).
uids() {
	sed -n 's/^Uid:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null | tr -s '\t ' ' '
}

# The emperor over three sleeper vassals (fixtures/sleepers: each payload is
# `sh -c "sleep 1000 & sleep 1000"`, a shell that forks one sleep and becomes the other),
# returned once all six sleeps run, grandchildren and all.
start_sleepers() {
	mkdir /tmp/vassals
	cp "$FIXTURES"/sleepers/*.ini /tmp/vassals/
	start_sut emperor --emperor /tmp/vassals
	six_sleeps() { [ "$(count_sut sleep)" -ge 6 ]; }
  wait_until 60 six_sleeps
  log "emperor $SUT_PID and its vassals:"
  show_sut
}

# end_sut SIGNAL SECONDS: send SIGNAL (KILL, TERM, ...) to the system under test; within
# SECONDS nothing of it may be left: the emperor, its helpers, its vassals, their children.
end_sut() {
	kill -"$1" "$SUT_PID"
	log "sent SIG$1 to the emperor"
	nothing_left() { [ -z "$(sut_pids)" ]; }
	if ! poll "$2" nothing_left; then
		show_sut
		fail "left $2 s after SIG$1 to the emperor: $(describe $(sut_pids))"
	fi
}

# terminate_leaving_no_cgroup_process CGROUP_ROOT: end_sut TERM 30, and no cgroup.procs under
# CGROUP_ROOT may list a process.
terminate_leaving_no_cgroup_process() {
	end_sut TERM 30
	for procs in $(find "$1" -name cgroup.procs); do
		[ -s "$procs" ] && fail "$procs still lists $(cat "$procs" | tr '\n' ' ')"
	done
	log "cgroups left under $1: $(find "$1" -mindepth 1 -type d | tr '\n' ' ')"
}
