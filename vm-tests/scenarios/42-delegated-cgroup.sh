# An emperor started in a cgroup delegated to it (what systemd does for a unit with
# Delegate=yes, as the shipped one has) keeps every vassal's cgroup below that cgroup with
# --emperor-cgroup self: it moves itself into a leaf of it, its tenants' slices and vassals go
# below, and nothing is made at /sys/fs/cgroup/emperor. Started in the root cgroup instead,
# `self` is refused with a message that says why.
. /vm/scenarios/lib.sh

STATS=127.0.0.1:9191
DIR=/tmp/vassals
SUT_LOG=/tmp/emperor.log
UNIT=/sys/fs/cgroup/emperor.service
mkdir "$DIR" "$UNIT"
printf '%s\n' '[uwsgi]' 'unprivileged-binary-patch-arg = /bin/sleep 100000' > "$DIR/one.ini"

# In the root cgroup, "self" has nothing delegated to use.
if sh -c 'echo $$ > /sys/fs/cgroup/cgroup.procs && exec emperor --emperor "$0" --emperor-cgroup self' \
	"$DIR" 2> /tmp/refused.log; then
	fail "--emperor-cgroup self was accepted in the root cgroup"
fi
grep -q 'Delegate=yes' /tmp/refused.log || fail "the refusal does not say why: $(cat /tmp/refused.log)"
log "refused in the root cgroup: $(tail -1 /tmp/refused.log)"

SUT_CGROUP=$UNIT start_sut emperor --emperor "$DIR" --emperor-cgroup self --emperor-stats "$STATS" \
	2> "$SUT_LOG"
wait_until 60 payload_of "$STATS" "$DIR/one.ini"
show_sut
assert_eq "0::/emperor.service/.emperor" "$(cat /proc/$SUT_PID/cgroup)" "the emperor's own cgroup"
slice="$UNIT/tenant-$(echo "$DIR" | tr / _)"
vassal="$slice/$(echo "$DIR/one.ini" | tr / _)"
[ -d "$vassal/payload" ] || fail "no vassal cgroup $vassal/payload: $(find "$UNIT" -type d | tr '\n' ' ')"
assert_eq "0::${vassal#/sys/fs/cgroup}/payload" "$(cat /proc/$payload/cgroup)" "the payload's cgroup"
[ ! -e /sys/fs/cgroup/emperor ] || fail "/sys/fs/cgroup/emperor was made: $(ls /sys/fs/cgroup/emperor)"

terminate_leaving_no_cgroup_process "$UNIT"
show_sut_log
pass
