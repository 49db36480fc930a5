//! Fixed-capacity slot lists (the control and stats servers' clients, whose slot is their
//! epoll token).

/// The first empty slot of `slots`, or a new one while fewer than `max` exist.
pub fn free_slot<T>(slots: &mut Vec<Option<T>>, max: usize) -> Option<usize> {
    if let Some(i) = slots.iter().position(Option::is_none) {
        return Some(i);
    }
    (slots.len() < max).then(|| {
        slots.push(None);
        slots.len() - 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_slots_are_reused_and_the_list_never_grows_past_max() {
        let mut slots: Vec<Option<u8>> = Vec::new();
        assert_eq!(free_slot(&mut slots, 2), Some(0));
        slots[0] = Some(1);
        assert_eq!(free_slot(&mut slots, 2), Some(1));
        slots[1] = Some(2);
        assert_eq!(free_slot(&mut slots, 2), None);
        slots[0] = None;
        assert_eq!(free_slot(&mut slots, 2), Some(0));
        assert_eq!(slots.len(), 2);
    }
}
