//! `emperor top ADDR`: a live view of an emperor's vassals over its stats socket, as uwsgitop
//! or htop. The refresh thread (refresh.rs) fetches the document (client.rs, document.rs) and
//! reads /proc (usage.rs); this loop draws (view.rs) the rows (rows.rs) of the state (app.rs)
//! that keys (keys.rs) change.

mod app;
pub mod client;
mod document;
mod keys;
mod refresh;
mod rows;
mod screen;
mod usage;
mod view;

pub use rows::SortKey;

use ratatui::crossterm::event::{self, Event};
use std::process::ExitCode;
use std::time::Duration;

/// What `emperor top` was asked.
#[derive(Debug, Clone)]
pub struct TopArgs {
    pub addr: String,
    pub interval: Duration,
    pub tenant: Option<String>,
    pub sort: SortKey,
}

#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error("setting up the terminal: {0}")]
    Terminal(std::io::Error),
    #[error("drawing on the terminal: {0}")]
    Draw(std::io::Error),
    #[error("reading keys: {0}")]
    Keys(std::io::Error),
}

/// How long the loop waits for a key before it looks for a refresh again.
const KEY_WAIT: Duration = Duration::from_millis(100);

pub fn run(args: TopArgs) -> ExitCode {
    match show(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("emperor top: {e}");
            ExitCode::FAILURE
        }
    }
}

fn show(args: TopArgs) -> Result<(), TopError> {
    let refresher = refresh::start(client::StatsAddr::parse(&args.addr), args.interval);
    let mut app = app::App::new(&args.addr, args.interval, args.sort, args.tenant);
    let mut screen = screen::Screen::open().map_err(TopError::Terminal)?;
    loop {
        while let Ok(refresh) = refresher.updates.try_recv() {
            app.latest = Some(refresh);
        }
        screen
            .terminal
            .draw(|frame| view::render(frame, &mut app))
            .map_err(TopError::Draw)?;
        if !event::poll(KEY_WAIT).map_err(TopError::Keys)? {
            continue;
        }
        if let Event::Key(key) = event::read().map_err(TopError::Keys)? {
            let action = keys::action(key, app.typing);
            if action.is_some_and(|a| app.apply(a) == app::Flow::Quit) {
                return Ok(());
            }
        }
    }
}
