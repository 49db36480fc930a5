//! Commands to a runtime that its link could not take at once (EAGAIN on the non-blocking
//! socket): kept in order and written when the link is writable again, never dropped. The
//! protocol's commands say what the runtime should end up doing, so a command already queued
//! is not queued twice, and nothing is queued after a stop: the queue never holds more than
//! one of each command.

use crate::protocol::Command;
use std::collections::VecDeque;

/// Most commands a queue holds: one of each kind.
const CAPACITY: usize = 2;

#[derive(Debug, Default)]
pub struct Outbox {
    pending: VecDeque<Command>,
}

impl Outbox {
    /// Queue `command` after the others; false when it adds nothing (already queued, or a
    /// stop is queued and the runtime will exit anyway).
    pub fn push(&mut self, command: Command) -> bool {
        if self.pending.contains(&command) || self.pending.contains(&Command::Stop) {
            return false;
        }
        self.pending.push_back(command);
        debug_assert!(self.pending.len() <= CAPACITY);
        true
    }

    /// The next command to write.
    pub fn front(&self) -> Option<Command> {
        self.pending.front().copied()
    }

    /// The front command was written.
    pub fn pop(&mut self) {
        self.pending.pop_front();
    }

    /// What it holds, as protocol bytes (an upgrade hands them on).
    pub fn bytes(&self) -> Vec<u8> {
        self.pending.iter().map(|c| c.byte()).collect()
    }

    /// An outbox holding what `bytes` named (unknown bytes are dropped).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut outbox = Outbox::default();
        for command in bytes.iter().filter_map(|&b| Command::from_byte(b)) {
            outbox.push(command);
        }
        outbox
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The link is broken: what was queued can no longer be delivered.
    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(outbox: &mut Outbox) -> Vec<Command> {
        std::iter::from_fn(|| {
            let next = outbox.front();
            outbox.pop();
            next
        })
        .collect()
    }

    #[test]
    fn keeps_commands_in_order() {
        let mut outbox = Outbox::default();
        assert!(outbox.push(Command::Reload));
        assert!(outbox.push(Command::Stop));
        assert_eq!(drain(&mut outbox), [Command::Reload, Command::Stop]);
        assert!(outbox.is_empty());
    }

    #[test]
    fn a_second_reload_while_one_is_queued_adds_nothing() {
        let mut outbox = Outbox::default();
        assert!(outbox.push(Command::Reload));
        for _ in 0..1000 {
            assert!(!outbox.push(Command::Reload));
        }
        assert_eq!(drain(&mut outbox), [Command::Reload]);
    }

    #[test]
    fn nothing_is_queued_after_a_stop_and_the_stop_stays() {
        let mut outbox = Outbox::default();
        assert!(outbox.push(Command::Stop));
        assert!(!outbox.push(Command::Reload));
        assert!(!outbox.push(Command::Stop));
        assert_eq!(drain(&mut outbox), [Command::Stop]);
    }

    #[test]
    fn a_reload_written_frees_room_for_the_next() {
        let mut outbox = Outbox::default();
        outbox.push(Command::Reload);
        outbox.pop();
        assert!(outbox.push(Command::Reload));
        assert_eq!(outbox.front(), Some(Command::Reload));
    }

    #[test]
    fn any_sequence_stays_bounded_and_loses_no_stop_or_last_reload() {
        // Every sequence of up to 8 commands: the queue holds at most one of each, a stop
        // pushed is always delivered, and a reload pushed before any stop is delivered.
        for bits in 0u32..(1 << 8) {
            for len in 0..=8 {
                let sequence: Vec<Command> = (0..len)
                    .map(|i| {
                        if bits & (1 << i) != 0 {
                            Command::Stop
                        } else {
                            Command::Reload
                        }
                    })
                    .collect();
                let mut outbox = Outbox::default();
                for &command in &sequence {
                    outbox.push(command);
                    assert!(outbox.pending.len() <= CAPACITY);
                }
                let sent = drain(&mut outbox);
                let first_stop = sequence.iter().position(|&c| c == Command::Stop);
                assert_eq!(sent.contains(&Command::Stop), first_stop.is_some());
                let reload_before_stop =
                    sequence[..first_stop.unwrap_or(len)].contains(&Command::Reload);
                assert_eq!(sent.contains(&Command::Reload), reload_before_stop);
                assert_eq!(sent.last() == Some(&Command::Stop), first_stop.is_some());
            }
        }
    }

    #[test]
    fn clear_forgets_everything() {
        let mut outbox = Outbox::default();
        outbox.push(Command::Reload);
        outbox.push(Command::Stop);
        outbox.clear();
        assert!(outbox.is_empty());
        assert_eq!(outbox.front(), None);
    }
}
