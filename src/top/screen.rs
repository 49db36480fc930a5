//! The terminal while `emperor top` runs: raw mode and the alternate screen, given back on
//! every way out: a return, an error, a panic (ratatui's panic hook, and this guard's drop
//! while unwinding).

use ratatui::DefaultTerminal;

pub struct Screen {
    pub terminal: DefaultTerminal,
}

impl Screen {
    pub fn open() -> std::io::Result<Screen> {
        match ratatui::try_init() {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(e) => {
                // It may have got as far as raw mode.
                ratatui::restore();
                Err(e)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        ratatui::restore();
    }
}
