//! What the view shows and the user chose: the last refresh, the sort, the filters, the
//! selected row. Keys change it through [`App::apply`].

use super::keys::Action;
use super::refresh::{Refresh, Snapshot};
use super::rows::{self, Filter, Row, Sort, SortKey};
use ratatui::widgets::TableState;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

pub struct App {
    /// The stats address as given.
    pub addr: String,
    pub interval: Duration,
    pub sort: Sort,
    pub filter: Filter,
    /// The name filter is being typed.
    pub typing: bool,
    /// None until the first refresh.
    pub latest: Option<Refresh>,
    pub table: TableState,
    /// Rows the table showed last (PageUp/PageDown move by that).
    pub page: usize,
}

impl App {
    pub fn new(addr: &str, interval: Duration, sort: SortKey, tenant: Option<String>) -> App {
        App {
            addr: addr.to_string(),
            interval,
            sort: Sort {
                key: sort,
                reversed: false,
            },
            filter: Filter {
                tenant,
                name: String::new(),
            },
            typing: false,
            latest: None,
            table: TableState::default().with_selected(Some(0)),
            page: 10,
        }
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.latest.as_ref().and_then(|r| r.as_ref().ok())
    }

    /// The rows shown now: the last snapshot's, filtered and sorted.
    pub fn rows(&self) -> Vec<Row> {
        self.snapshot().map_or_else(Vec::new, |s| {
            rows::rows(&s.document, &s.usage, s.taken_unix, &self.filter, self.sort)
        })
    }

    pub fn apply(&mut self, action: Action) -> Flow {
        match action {
            Action::Quit => return Flow::Quit,
            Action::NextSort => {
                self.sort = Sort {
                    key: self.sort.key.next(),
                    reversed: false,
                }
            }
            Action::Reverse => self.sort.reversed = !self.sort.reversed,
            Action::NextTenant => {
                let tenants = self
                    .snapshot()
                    .map(|s| s.document.tenant_names())
                    .unwrap_or_default();
                self.filter.tenant = rows::next_tenant(self.filter.tenant.as_deref(), &tenants);
            }
            Action::EditFilter => self.typing = true,
            Action::Type(c) => self.filter.name.push(c),
            Action::Erase => {
                self.filter.name.pop();
            }
            Action::FinishFilter => self.typing = false,
            Action::ClearFilter => {
                self.typing = false;
                self.filter.name.clear();
            }
            Action::Up => self.select(|at, _| at.saturating_sub(1)),
            Action::Down => self.select(|at, _| at + 1),
            Action::PageUp => self.select(|at, page| at.saturating_sub(page)),
            Action::PageDown => self.select(|at, page| at + page),
            Action::Top => self.select(|_, _| 0),
            Action::Bottom => self.select(|_, _| usize::MAX),
        }
        Flow::Continue
    }

    /// Move the selection, kept on a row.
    fn select(&mut self, to: impl FnOnce(usize, usize) -> usize) {
        let at = self.table.selected().unwrap_or(0);
        let last = self.rows().len().saturating_sub(1);
        self.table.select(Some(to(at, self.page.max(1)).min(last)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::document::{Document, Tenant, Vassal};

    fn app_with(names: &[(&str, &str)]) -> App {
        let mut app = App::new("s.sock", Duration::from_secs(1), SortKey::Name, None);
        let vassals = names
            .iter()
            .map(|&(name, tenant)| Vassal {
                name: name.into(),
                tenant: tenant.into(),
                ..Vassal::default()
            })
            .collect();
        let mut tenants: Vec<Tenant> = names
            .iter()
            .map(|&(_, t)| Tenant { tenant: t.into() })
            .collect();
        tenants.dedup_by(|a, b| a.tenant == b.tenant);
        app.latest = Some(Ok(Snapshot {
            document: Document {
                vassals,
                tenants,
                totals: None,
            },
            ..Snapshot::default()
        }));
        app
    }

    fn shown(app: &App) -> Vec<String> {
        app.rows().into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn t_shows_one_tenant_at_a_time_then_all_again() {
        let mut app = app_with(&[("a.ini", "one"), ("b.ini", "two")]);
        assert_eq!(shown(&app), ["a.ini", "b.ini"]);
        app.apply(Action::NextTenant);
        assert_eq!(shown(&app), ["a.ini"]);
        app.apply(Action::NextTenant);
        assert_eq!(shown(&app), ["b.ini"]);
        app.apply(Action::NextTenant);
        assert_eq!(shown(&app), ["a.ini", "b.ini"]);
    }

    #[test]
    fn a_typed_name_filter_narrows_and_esc_clears_it() {
        let mut app = app_with(&[("api.ini", "x"), ("web.ini", "x")]);
        app.apply(Action::EditFilter);
        assert!(app.typing);
        for c in "wez".chars() {
            app.apply(Action::Type(c));
        }
        assert!(shown(&app).is_empty());
        app.apply(Action::Erase);
        app.apply(Action::FinishFilter);
        assert!(!app.typing);
        assert_eq!(shown(&app), ["web.ini"]);
        app.apply(Action::ClearFilter);
        assert_eq!(shown(&app), ["api.ini", "web.ini"]);
    }

    #[test]
    fn the_selection_stays_on_a_row_and_s_r_change_the_sort() {
        let mut app = app_with(&[("a", "x"), ("b", "x"), ("c", "x")]);
        app.apply(Action::Up);
        assert_eq!(app.table.selected(), Some(0));
        app.apply(Action::PageDown);
        assert_eq!(app.table.selected(), Some(2));
        app.apply(Action::Down);
        assert_eq!(app.table.selected(), Some(2));
        app.apply(Action::Top);
        assert_eq!(app.table.selected(), Some(0));

        app.apply(Action::Reverse);
        assert_eq!(shown(&app), ["c", "b", "a"]);
        app.apply(Action::NextSort);
        assert_eq!(app.sort.key, SortKey::Tenant);
        assert!(
            !app.sort.reversed,
            "a new column starts in its own direction"
        );
        assert_eq!(app.apply(Action::Quit), Flow::Quit);
    }
}
