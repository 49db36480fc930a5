# SIGKILL to the emperor takes every vassal down with it: no runtime and no payload process,
# grandchildren included, outlives it by more than a few seconds.
. /vm/scenarios/lib.sh

start_sleepers
end_sut KILL 5
pass
