//! Keys: what each key does to the dashboard's state, as small methods
//! returning an [`Action`] for the main loop (tui/mod.rs).

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};

use super::app::{App, Mode, View};
use super::rows::Metric;

/// What the main loop does after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing changed.
    None,
    /// The screen changed.
    Redraw,
    /// Pause (true) or resume (false): the replay stops; the view stops
    /// taking updates.
    Pause(bool),
    Quit,
}

impl App {
    /// Maps a key to a change of state.
    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('d')) {
            return Action::Quit;
        }
        if self.mode == Mode::Filter {
            return self.filter_key(key);
        }
        // A status message lasts until the next key.
        let had_message = self.message.take().is_some();
        if self.help {
            return match key.code {
                KeyCode::Char('q') => Action::Quit,
                KeyCode::Esc | KeyCode::Char('?') | KeyCode::Enter => {
                    self.help = false;
                    Action::Redraw
                }
                _ => Action::None,
            };
        }
        match key.code {
            KeyCode::Char('q') => Action::Quit,
            KeyCode::Char('?') => {
                self.help = true;
                Action::Redraw
            }
            KeyCode::Char('p') => {
                self.set_paused(!self.paused);
                Action::Pause(self.paused)
            }
            KeyCode::Tab => self.switch((self.view.index() + 1) % View::ALL.len()),
            KeyCode::BackTab => self.switch((self.view.index() + View::ALL.len() - 1) % View::ALL.len()),
            KeyCode::Char(c @ '1'..='4') => self.switch(c as usize - '1' as usize),
            KeyCode::Char('/') => {
                self.mode = Mode::Filter;
                Action::Redraw
            }
            KeyCode::Esc => self.escape(),
            KeyCode::Enter => self.enter(),
            KeyCode::Char('s') if self.view == View::Sessions => {
                self.sort = self.sort.next();
                self.session_sel = 0;
                self.rebuild_sessions(None);
                Action::Redraw
            }
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::PageUp => self.move_by(-(self.page.get().max(1) as isize)),
            KeyCode::PageDown => self.move_by(self.page.get().max(1) as isize),
            KeyCode::Home | KeyCode::Char('g') => self.move_by(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_by(isize::MAX / 2),
            KeyCode::Left | KeyCode::Char('h') if self.mode == Mode::Detail => self.occurrence(1),
            KeyCode::Right | KeyCode::Char('l') if self.mode == Mode::Detail => self.occurrence(-1),
            KeyCode::Char('r') if matches!(self.view, View::Sessions | View::Findings) && self.mode == Mode::Browse => {
                self.sort_reverse = !self.sort_reverse;
                let keep = self.selected_session().map(|s| s.id);
                self.rebuild_sessions(keep);
                self.rebuild_findings();
                Action::Redraw
            }
            KeyCode::Char('e') => {
                self.message = Some(super::export::json(self));
                Action::Redraw
            }
            KeyCode::Char('w') => {
                self.message = Some(super::export::pcap(self));
                Action::Redraw
            }
            _ if had_message => Action::Redraw,
            _ => Action::None,
        }
    }

    /// The mouse: the wheel moves the selection (scrolls a detail), a
    /// click on a tab opens it, a click on a row selects it and a click on
    /// the selected row opens its detail.
    pub fn on_mouse(&mut self, m: MouseEvent) -> Action {
        if self.help || self.mode == Mode::Filter {
            return Action::None;
        }
        match m.kind {
            MouseEventKind::ScrollDown => self.move_by(if self.view == View::Latency { 1 } else { 3 }),
            MouseEventKind::ScrollUp => self.move_by(if self.view == View::Latency { -1 } else { -3 }),
            MouseEventKind::Down(MouseButton::Left) => self.click(m.column, m.row),
            _ => Action::None,
        }
    }

    fn click(&mut self, x: u16, y: u16) -> Action {
        let tab = self.tab_hits.borrow().iter().find(|(tx, w, _)| y == 0 && x >= *tx && x < tx + w).map(|t| t.2);
        if let Some(v) = tab {
            return self.switch(v.index());
        }
        let Some((area, off, per_row)) = self.list_hits.get() else { return Action::None };
        let inside = x >= area.x && x < area.x + area.width && y >= area.y && y < area.y + area.height;
        if self.mode != Mode::Browse || !inside || !matches!(self.view, View::Sessions | View::Findings) {
            return Action::None;
        }
        let i = off + ((y - area.y) / per_row.max(1)) as usize;
        let len = if self.view == View::Sessions { self.session_table_len() } else { self.group_order.len() };
        let sel = if self.view == View::Sessions { &mut self.session_sel } else { &mut self.finding_sel };
        if i >= len {
            return Action::None;
        }
        if *sel == i {
            return self.enter();
        }
        *sel = i;
        Action::Redraw
    }

    /// Pausing holds updates back; resuming applies what was held.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if !paused {
            let p = std::mem::take(&mut self.pending);
            self.dropped_while_paused += p.dropped;
            if let Some(snap) = p.snapshot {
                self.apply(p.records, snap);
            }
        }
    }

    fn switch(&mut self, i: usize) -> Action {
        if self.mode == Mode::Detail && self.view != View::ALL[i] {
            self.mode = Mode::Browse;
        }
        self.view = View::ALL[i];
        Action::Redraw
    }

    fn escape(&mut self) -> Action {
        if self.mode == Mode::Detail {
            self.mode = Mode::Browse;
            return Action::Redraw;
        }
        if !self.filter.is_empty() {
            self.set_filter(String::new());
            return Action::Redraw;
        }
        Action::None
    }

    fn enter(&mut self) -> Action {
        if self.view == View::Findings && self.mode == Mode::Browse && self.selected_group().is_some() {
            self.mode = Mode::Detail;
            self.detail_occurrence = 0;
            self.detail_scroll = 0;
            return Action::Redraw;
        }
        if self.view == View::Sessions && self.mode == Mode::Browse {
            let Some(id) = self.selected_session().map(|s| s.id) else { return Action::None };
            self.mode = Mode::Detail;
            self.detail_session = Some(id);
            self.detail_scroll = 0;
            return Action::Redraw;
        }
        Action::None
    }

    fn move_by(&mut self, delta: isize) -> Action {
        let step = |sel: usize, len: usize| -> usize {
            if len == 0 { 0 } else { (sel as isize).saturating_add(delta).clamp(0, len as isize - 1) as usize }
        };
        match (self.view, self.mode) {
            (View::Findings | View::Sessions, Mode::Detail) => {
                self.detail_scroll = (self.detail_scroll as isize).saturating_add(delta).clamp(0, 1000) as u16;
            }
            (View::Findings, _) => self.finding_sel = step(self.finding_sel, self.group_order.len()),
            (View::Sessions, _) => self.session_sel = step(self.session_sel, self.shown_sessions()),
            (View::Latency, _) => self.metric_sel = step(self.metric_sel, Metric::ALL.len()),
            (View::Overview, _) => return Action::None,
        }
        Action::Redraw
    }

    /// Detail: `delta` = 1 goes to an older occurrence.
    fn occurrence(&mut self, delta: isize) -> Action {
        let n = self.selected_group().map_or(0, |g| g.recent.len());
        if n == 0 {
            return Action::None;
        }
        self.detail_occurrence = (self.detail_occurrence as isize + delta).clamp(0, n as isize - 1) as usize;
        self.detail_scroll = 0;
        Action::Redraw
    }

    fn filter_key(&mut self, key: KeyEvent) -> Action {
        match key.code {
            KeyCode::Enter => self.mode = Mode::Browse,
            KeyCode::Esc => {
                self.mode = Mode::Browse;
                self.set_filter(String::new());
            }
            KeyCode::Backspace => {
                let mut f = self.filter.clone();
                f.pop();
                self.set_filter(f);
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                let mut f = self.filter.clone();
                f.push(c);
                self.set_filter(f);
            }
            _ => return Action::None,
        }
        Action::Redraw
    }
}

/// Builds a key event (tests and the tmux-free key paths).
pub fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}
