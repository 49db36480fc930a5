//! Every cell of the table: the cells that do something are listed here one by one, as the
//! specification; every other (state, event, context) must leave the state alone and do
//! nothing.

use super::*;
use Action::*;
use Event::*;

const NO_CHANGE: State = State::Starting { changed: false };
const CHANGED: State = State::Starting { changed: true };
const RELOADING: State = State::Reloading { changed: false };
const RELOADING_CHANGED: State = State::Reloading { changed: true };
const LIVE: [State; 5] = [
    NO_CHANGE,
    CHANGED,
    State::Running,
    RELOADING,
    RELOADING_CHANGED,
];
const RESTING: [State; 5] = [
    State::Queued,
    State::Waiting,
    State::Idle,
    State::OnDemand,
    State::OverQuota,
];
const THENS: [Then; 5] = [
    Then::Bury,
    Then::Start,
    Then::Idle,
    Then::Rest,
    Then::FallBack,
];

fn stopping(then: Then) -> State {
    State::Stopping { then }
}

pub(super) fn all_states() -> Vec<State> {
    let mut states = RESTING.to_vec();
    states.extend(LIVE);
    states.extend(THENS.map(stopping));
    states
}

pub(super) fn all_events() -> Vec<Event> {
    let mut events = vec![
        ConfigChanged {
            moves_socket: false,
        },
        ConfigChanged { moves_socket: true },
        ConfigRemoved,
        Spawned,
        SpawnFailed,
        NoFds,
        RespawnDue,
        Connection,
        QuotaRoom,
        PayloadStarted,
        AsksToStop,
        FallBackAsked,
        ReloadAsked,
        HeartbeatMissed,
        IdleTimeout,
        Shutdown,
    ];
    events.extend([Park::Queue, Park::Hold, Park::OverQuota, Park::Refused].map(Parked));
    events.extend([ExitKind::FreshJail, ExitKind::Clean, ExitKind::Died].map(Exited));
    events
}

fn contexts() -> [Context; 4] {
    [(false, false), (true, false), (false, true), (true, true)].map(
        |(on_demand, shutting_down)| Context {
            on_demand,
            shutting_down,
        },
    )
}

type Row = (State, Event, State, Vec<Action>);

/// The cells that act while the emperor runs, for a vassal that is (`on_demand`) or is not
/// on demand.
fn running_rows(on_demand: bool) -> Vec<Row> {
    let changed = |moves_socket| ConfigChanged { moves_socket };
    let mut rows: Vec<Row> = vec![
        (
            State::Queued,
            Parked(Park::Queue),
            State::Queued,
            vec![Enqueue],
        ),
        (
            State::Queued,
            Parked(Park::Hold),
            State::OnDemand,
            vec![Rest],
        ),
        (
            State::Queued,
            Parked(Park::OverQuota),
            State::OverQuota,
            vec![],
        ),
        (State::Queued, Parked(Park::Refused), State::Idle, vec![]),
        (State::Queued, Spawned, NO_CHANGE, vec![]),
        (State::Queued, SpawnFailed, State::Waiting, vec![RetryLater]),
        (State::Queued, NoFds, State::Waiting, vec![WaitForFds]),
        (State::Waiting, RespawnDue, State::Queued, vec![Enqueue]),
        (State::OnDemand, Connection, State::Queued, vec![Enqueue]),
        (State::OverQuota, QuotaRoom, State::Queued, vec![Start]),
        (State::Running, changed(false), RELOADING, vec![Reload]),
        (
            State::Running,
            changed(true),
            stopping(Then::Start),
            vec![Stop],
        ),
        (NO_CHANGE, PayloadStarted, State::Running, vec![]),
        (RELOADING, PayloadStarted, State::Running, vec![]),
        (
            CHANGED,
            PayloadStarted,
            State::Running,
            vec![ApplyPendingChange],
        ),
        (
            RELOADING_CHANGED,
            PayloadStarted,
            State::Running,
            vec![ApplyPendingChange],
        ),
        (NO_CHANGE, ReloadAsked, RELOADING, vec![Reload]),
        (CHANGED, ReloadAsked, RELOADING_CHANGED, vec![Reload]),
        (State::Running, ReloadAsked, RELOADING, vec![Reload]),
        (State::Running, HeartbeatMissed, RELOADING, vec![Reload]),
        (
            RELOADING,
            Exited(ExitKind::FreshJail),
            State::Queued,
            vec![CountRespawn, Enqueue],
        ),
        (
            RELOADING_CHANGED,
            Exited(ExitKind::FreshJail),
            State::Queued,
            vec![CountRespawn, Enqueue],
        ),
    ];
    // Not running: a change starts it, a removal forgets it (a queued one just waits: its
    // spawn reads the config as it is then).
    for state in RESTING {
        rows.push((state, ConfigRemoved, state, vec![Bury]));
        if state != State::Queued {
            for moves in [false, true] {
                rows.push((state, changed(moves), State::Queued, vec![Forgive, Start]));
            }
        }
    }
    for state in LIVE {
        if matches!(state, State::Starting { .. } | State::Reloading { .. }) {
            let pending = match state {
                State::Starting { .. } => CHANGED,
                _ => RELOADING_CHANGED,
            };
            for moves in [false, true] {
                rows.push((state, changed(moves), pending, vec![]));
            }
        }
        let asked = if on_demand { Then::Rest } else { Then::Idle };
        rows.push((state, ConfigRemoved, stopping(Then::Bury), vec![Stop]));
        rows.push((state, AsksToStop, stopping(asked), vec![Stop]));
        rows.push((state, FallBackAsked, stopping(Then::FallBack), vec![]));
        rows.push((state, IdleTimeout, stopping(Then::Rest), vec![Stop]));
        for kind in [ExitKind::FreshJail, ExitKind::Clean, ExitKind::Died] {
            if kind == ExitKind::FreshJail && matches!(state, State::Reloading { .. }) {
                continue;
            }
            rows.push(match (kind, on_demand) {
                (ExitKind::Clean, true) => (state, Exited(kind), State::OnDemand, vec![Rest]),
                _ => (state, Exited(kind), State::Waiting, vec![Backoff]),
            });
        }
    }
    for then in THENS {
        for moves in [false, true] {
            rows.push((
                stopping(then),
                changed(moves),
                stopping(Then::Start),
                vec![],
            ));
        }
        rows.push((stopping(then), ConfigRemoved, stopping(Then::Bury), vec![]));
        let after: (State, Vec<Action>) = match then {
            Then::Bury => (stopping(Then::Bury), vec![Bury]),
            Then::Start => (State::Queued, vec![Forgive, Start]),
            Then::Idle => (State::Idle, vec![]),
            Then::Rest => (State::OnDemand, vec![Rest]),
            Then::FallBack => (State::Queued, vec![FallBackLevel, CountRespawn, Enqueue]),
        };
        for kind in [ExitKind::FreshJail, ExitKind::Clean, ExitKind::Died] {
            rows.push((stopping(then), Exited(kind), after.0, after.1.clone()));
        }
    }
    rows
}

/// The cells that act while the emperor stops: whatever ends is forgotten, the live are
/// told to stop, the rest forgotten at once; nothing else is heard.
fn stopping_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for state in all_states() {
        for kind in [ExitKind::FreshJail, ExitKind::Clean, ExitKind::Died] {
            rows.push((state, Exited(kind), stopping(Then::Bury), vec![Bury]));
        }
        rows.push(match state {
            s if s.is_live() => (s, Shutdown, stopping(Then::Bury), vec![Stop]),
            State::Stopping { .. } => (state, Shutdown, stopping(Then::Bury), vec![]),
            s => (s, Shutdown, s, vec![Bury]),
        });
    }
    rows
}

#[test]
fn every_cell_does_what_the_rows_say_and_nothing_else() {
    let mut acting = 0;
    for context in contexts() {
        let rows = match context.shutting_down {
            true => stopping_rows(),
            false => running_rows(context.on_demand),
        };
        for state in all_states() {
            for event in all_events() {
                let listed: Vec<&Row> = rows
                    .iter()
                    .filter(|(s, e, _, _)| *s == state && *e == event)
                    .collect();
                assert!(listed.len() <= 1, "{state:?} × {event:?} listed twice");
                let (next, actions) = match listed.first() {
                    Some((_, _, next, actions)) => (*next, actions.clone()),
                    None => (state, Vec::new()),
                };
                let got = step(state, event, context);
                assert_eq!(
                    (got.next, got.actions),
                    (next, actions),
                    "{state:?} × {event:?} in {context:?}"
                );
                acting += usize::from(!listed.is_empty());
            }
        }
    }
    // The rows are all reachable cells, none listed for a state or event that does not exist.
    let listed: usize = contexts()
        .iter()
        .map(|c| match c.shutting_down {
            true => stopping_rows().len(),
            false => running_rows(c.on_demand).len(),
        })
        .sum();
    assert_eq!(acting, listed);
}

#[test]
fn a_change_during_a_start_or_reload_is_acted_on_when_it_ends() {
    let context = Context::default();
    let changed = ConfigChanged {
        moves_socket: false,
    };
    for during in [NO_CHANGE, RELOADING] {
        let pending = step(during, changed, context);
        assert!(pending.actions.is_empty(), "nothing is done mid-transition");
        let done = step(pending.next, PayloadStarted, context);
        assert_eq!(done.next, State::Running);
        assert_eq!(done.actions, vec![ApplyPendingChange]);
        let applied = step(State::Running, changed, context);
        assert_eq!(applied.actions, vec![Reload]);
    }
}

#[test]
fn only_the_runtimes_own_word_means_a_fresh_jail() {
    let context = Context::default();
    let fresh = step(RELOADING, Exited(ExitKind::FreshJail), context);
    assert_eq!(fresh.actions, vec![CountRespawn, Enqueue]);
    for kind in [ExitKind::Clean, ExitKind::Died] {
        let died = step(RELOADING, Exited(kind), context);
        assert_eq!(died.actions, vec![Backoff], "{kind:?} during a reload");
    }
    let outside = step(State::Running, Exited(ExitKind::FreshJail), context);
    assert_eq!(outside.actions, vec![Backoff]);
}

#[test]
fn the_newest_wish_wins_while_a_vassal_stops() {
    let context = Context::default();
    let removed = step(State::Running, ConfigRemoved, context);
    let back = step(
        removed.next,
        ConfigChanged {
            moves_socket: false,
        },
        context,
    );
    assert_eq!(back.next, stopping(Then::Start));
    let gone_again = step(back.next, ConfigRemoved, context);
    assert_eq!(gone_again.next, stopping(Then::Bury));
    let exit = step(gone_again.next, Exited(ExitKind::Clean), context);
    assert_eq!(exit.actions, vec![Bury]);
}

#[test]
fn every_state_has_a_name_and_live_states_are_the_three_with_a_wanted_runtime() {
    for state in all_states() {
        assert!(!state.name().is_empty());
        assert_eq!(state.is_live(), LIVE.contains(&state), "{state:?}");
    }
}
