//! Drawing one frame: the totals on top, the vassals' table (or why there is none), the keys
//! at the bottom.

use super::app::App;
use super::rows::{format_memory, format_uptime, Row as VassalRow, SortKey};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

/// The columns, each with the sort key it shows (PID and LOYAL sort by nothing).
const COLUMNS: [(&str, Option<SortKey>, Constraint); 9] = [
    ("NAME", Some(SortKey::Name), Constraint::Fill(2)),
    ("TENANT", Some(SortKey::Tenant), Constraint::Fill(2)),
    ("STATE", Some(SortKey::State), Constraint::Length(24)),
    ("PID", None, Constraint::Length(8)),
    ("UPTIME", Some(SortKey::Uptime), Constraint::Length(8)),
    ("RESPAWNS", Some(SortKey::Respawns), Constraint::Length(9)),
    ("LOYAL", None, Constraint::Length(5)),
    ("MEMORY", Some(SortKey::Memory), Constraint::Length(8)),
    ("CPU%", Some(SortKey::Cpu), Constraint::Length(7)),
];

pub fn render(frame: &mut Frame, app: &mut App) {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(header_lines(app)), header);
    match &app.latest {
        None => frame.render_widget(
            Paragraph::new(format!("asking {} for its stats...", app.addr)),
            body,
        ),
        Some(Err(why)) => frame.render_widget(
            Paragraph::new(format!(
                "no emperor at {}: {why}; retrying every {}s",
                app.addr,
                app.interval.as_secs_f64()
            ))
            .red()
            .bold()
            .wrap(Wrap { trim: false }),
            body,
        ),
        Some(Ok(_)) => render_table(frame, app, body),
    }
    frame.render_widget(Paragraph::new(keys_line(app)), footer);
}

/// Totals, and what the rows are filtered by.
fn header_lines(app: &App) -> Vec<Line<'static>> {
    let totals = match app.snapshot() {
        Some(s) => {
            let t = s.document.totals();
            let mut line = format!(
                "vassals {}  running {}  blacklisted {}  tenants {}",
                t.vassals,
                t.running,
                t.blacklisted,
                s.document.tenant_names().len()
            );
            if !s.local {
                line.push_str("  (memory and CPU: the emperor is not on this host)");
            }
            line
        }
        None => String::new(),
    };
    let tenant = app.filter.tenant.as_deref().unwrap_or("all");
    let mut filters = vec![Span::raw(format!("tenant: {tenant}  name: "))];
    filters.push(Span::raw(app.filter.name.clone()).bold());
    if app.typing {
        filters.push(Span::raw("_").slow_blink());
    }
    vec![
        Line::from(vec![
            Span::raw(format!("emperor top {}  ", app.addr)).bold(),
            Span::raw(totals),
        ]),
        Line::from(filters),
    ]
}

fn render_table(frame: &mut Frame, app: &mut App, area: Rect) {
    let rows = app.rows();
    let arrow = if app.sort.descending() { "▼" } else { "▲" };
    let header = Row::new(COLUMNS.iter().map(|&(title, key, _)| {
        if key == Some(app.sort.key) {
            Cell::from(format!("{title}{arrow}")).underlined()
        } else {
            Cell::from(title)
        }
    }))
    .bold();
    let widths = COLUMNS.map(|(_, _, width)| width);
    let table = Table::new(rows.iter().map(table_row), widths)
        .header(header)
        .row_highlight_style(Style::new().reversed());
    // The header takes one line of the area.
    app.page = usize::from(area.height.saturating_sub(1));
    if app.table.selected().is_some_and(|at| at >= rows.len()) {
        app.table.select(Some(rows.len().saturating_sub(1)));
    }
    frame.render_stateful_widget(table, area, &mut app.table);
}

fn table_row(row: &VassalRow) -> Row<'static> {
    let unknown = || "-".to_string();
    let right = |text: String| Cell::from(Line::from(text).right_aligned());
    Row::new([
        Cell::from(row.name.clone()),
        Cell::from(row.tenant.clone()),
        Cell::from(row.state.clone()),
        right(row.pid.map_or_else(unknown, |p| p.to_string())),
        right(row.uptime.map_or_else(unknown, format_uptime)),
        right(row.respawns.to_string()),
        right(if row.loyal { "yes" } else { "no" }.to_string()),
        right(row.memory.map_or_else(unknown, format_memory)),
        right(row.cpu.map_or_else(unknown, |c| format!("{c:.1}"))),
    ])
}

fn keys_line(app: &App) -> Line<'static> {
    let direction = if app.sort.descending() {
        "descending"
    } else {
        "ascending"
    };
    let text = if app.typing {
        "type a name filter  Enter keep  Esc clear  up/down scroll".to_string()
    } else {
        format!(
            "q quit  s sort: {} {direction}  r reverse  t tenant  / filter  up/down scroll",
            app.sort.key.name()
        )
    };
    Line::from(text).reversed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::client::FetchError;
    use crate::top::document::{Document, Tenant, Vassal};
    use crate::top::refresh::{Snapshot, Unreachable};
    use crate::top::usage::Usage;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use std::collections::HashMap;
    use std::time::Duration;

    fn screen(app: &mut App) -> String {
        let mut terminal = Terminal::new(TestBackend::new(140, 10)).unwrap();
        terminal.draw(|frame| render(frame, app)).unwrap();
        let buffer = terminal.backend().buffer();
        let width = usize::from(buffer.area.width);
        buffer
            .content()
            .chunks(width)
            .map(|line| line.iter().map(|c| c.symbol()).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn app() -> App {
        App::new(
            "/run/stats.sock",
            Duration::from_secs(2),
            SortKey::Cpu,
            None,
        )
    }

    #[test]
    fn a_snapshot_shows_totals_rows_and_the_sort() {
        let mut app = app();
        app.latest = Some(Ok(Snapshot {
            document: Document {
                vassals: vec![Vassal {
                    name: "web.ini".into(),
                    tenant: "alice".into(),
                    state: "running".into(),
                    pid: 4242,
                    respawns: 3,
                    loyal: 1,
                    last_run: 1000 - 192,
                    ..Vassal::default()
                }],
                tenants: vec![Tenant {
                    tenant: "alice".into(),
                }],
                totals: None,
            },
            usage: HashMap::from([(
                4242,
                Usage {
                    rss_bytes: 45 << 20,
                    cpu_percent: Some(12.5),
                },
            )]),
            local: true,
            taken_unix: 1000,
        }));
        let shown = screen(&mut app);
        assert!(
            shown.contains("vassals 1  running 1  blacklisted 0  tenants 1"),
            "{shown}"
        );
        let row = shown.lines().find(|l| l.contains("web.ini")).unwrap();
        for cell in [
            "alice", "running", "4242", "3m12s", "3", "yes", "45.0M", "12.5",
        ] {
            assert!(row.contains(cell), "{cell} in {row}");
        }
        assert!(shown.contains("CPU%▼"), "{shown}");
        assert!(shown.contains("s sort: cpu descending"), "{shown}");
    }

    #[test]
    fn an_unreachable_emperor_is_said_with_the_retry_interval() {
        let mut app = app();
        let gone = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        app.latest = Some(Err(Unreachable::Fetch(FetchError::Connect(gone))));
        let shown = screen(&mut app);
        assert!(
            shown.contains(
                "no emperor at /run/stats.sock: connecting: connection refused; retrying every 2s"
            ),
            "{shown}"
        );
    }
}
