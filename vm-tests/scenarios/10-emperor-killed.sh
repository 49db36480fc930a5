# SIGKILL to the emperor takes every vassal down with it: no runtime and no payload process,
# grandchildren included, outlives it by more than a few seconds.
. /vm/scenarios/lib.sh

mkdir /tmp/vassals
cp "$FIXTURES"/sleepers/*.ini /tmp/vassals/
start_sut emperor --emperor /tmp/vassals

# Each payload is `sh -c "sleep 1000 & sleep 1000"`: the shell forks one sleep and becomes the
# other, so three vassals are up, grandchildren and all, once six sleeps run.
six_sleeps() { [ "$(count_sut sleep)" -ge 6 ]; }
wait_until 60 six_sleeps
log "emperor $SUT_PID and its vassals:"
show_sut

end_sut KILL 5
pass
