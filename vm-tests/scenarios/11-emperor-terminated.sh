# SIGTERM to the emperor stops every vassal, grandchildren included, and the emperor exits.
. /vm/scenarios/lib.sh

mkdir /tmp/vassals
cp "$FIXTURES"/sleepers/*.ini /tmp/vassals/
start_sut emperor --emperor /tmp/vassals

# Three payloads of `sh -c "sleep 1000 & sleep 1000"` make six sleeps (see 10-emperor-killed).
six_sleeps() { [ "$(count_sut sleep)" -ge 6 ]; }
wait_until 60 six_sleeps
log "emperor $SUT_PID and its vassals:"
show_sut

end_sut TERM 30
wait "$SUT_PID"
log "emperor exited with status $?"
pass
