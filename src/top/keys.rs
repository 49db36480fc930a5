//! Keys to actions. While a name filter is being typed, printable keys are its text; otherwise
//! each key is a command (the bottom line of the view lists them).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    NextSort,
    Reverse,
    NextTenant,
    /// `/` or `f`: start typing a name filter.
    EditFilter,
    Type(char),
    Erase,
    /// Enter: keep the filter typed so far.
    FinishFilter,
    /// Esc: no name filter.
    ClearFilter,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
}

/// The action of a key press (releases and repeats of terminals that report them are not
/// presses); `typing` while the name filter is edited.
pub fn action(key: KeyEvent, typing: bool) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    // Raw mode turns Ctrl-C into a key: it quits, as in top.
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return matches!(key.code, KeyCode::Char('c')).then_some(Action::Quit);
    }
    let moving = match key.code {
        KeyCode::Up => Some(Action::Up),
        KeyCode::Down => Some(Action::Down),
        KeyCode::PageUp => Some(Action::PageUp),
        KeyCode::PageDown => Some(Action::PageDown),
        KeyCode::Home => Some(Action::Top),
        KeyCode::End => Some(Action::Bottom),
        KeyCode::Esc => Some(Action::ClearFilter),
        _ => None,
    };
    if moving.is_some() {
        return moving;
    }
    if typing {
        return match key.code {
            KeyCode::Char(c) => Some(Action::Type(c)),
            KeyCode::Backspace => Some(Action::Erase),
            KeyCode::Enter => Some(Action::FinishFilter),
            _ => None,
        };
    }
    match key.code {
        KeyCode::Char('q') => Some(Action::Quit),
        KeyCode::Char('s') => Some(Action::NextSort),
        KeyCode::Char('r') => Some(Action::Reverse),
        KeyCode::Char('t') => Some(Action::NextTenant),
        KeyCode::Char('/' | 'f') => Some(Action::EditFilter),
        KeyCode::Char('k') => Some(Action::Up),
        KeyCode::Char('j') => Some(Action::Down),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn letters_are_commands_until_a_filter_is_typed() {
        assert_eq!(action(press(KeyCode::Char('q')), false), Some(Action::Quit));
        assert_eq!(
            action(press(KeyCode::Char('s')), false),
            Some(Action::NextSort)
        );
        assert_eq!(
            action(press(KeyCode::Char('f')), false),
            Some(Action::EditFilter)
        );
        assert_eq!(
            action(press(KeyCode::Char('/')), false),
            Some(Action::EditFilter)
        );
        assert_eq!(
            action(press(KeyCode::Char('q')), true),
            Some(Action::Type('q'))
        );
        assert_eq!(action(press(KeyCode::Backspace), true), Some(Action::Erase));
        assert_eq!(
            action(press(KeyCode::Enter), true),
            Some(Action::FinishFilter)
        );
        assert_eq!(action(press(KeyCode::Esc), true), Some(Action::ClearFilter));
        assert_eq!(action(press(KeyCode::Down), true), Some(Action::Down));
    }

    #[test]
    fn ctrl_c_quits_even_while_typing_and_releases_do_nothing() {
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(action(ctrl_c, true), Some(Action::Quit));
        let mut release = press(KeyCode::Char('q'));
        release.kind = KeyEventKind::Release;
        assert_eq!(action(release, false), None);
    }
}
