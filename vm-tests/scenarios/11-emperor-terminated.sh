# SIGTERM to the emperor stops every vassal, grandchildren included, and the emperor exits.
. /vm/scenarios/lib.sh

start_sleepers
end_sut TERM 30
wait "$SUT_PID"
log "emperor exited with status $?"
pass
