//! `vigil top`: a live terminal view of the cluster, like the dashboard.
//!
//! Keys: `q`/Esc quit, `s` next sort column, `r` reverse, `/` filter (Enter
//! or Esc ends typing), `a` all states, `1` alive, `2` suspect, `3` failed,
//! `4` left. The terminal is restored on every exit, panics included.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, List, ListItem, Paragraph, Row, Table};
use serde_json::Value;

use super::events::describe;
use super::http::{ClientError, base_url, get};
use super::members::printable;

const SORTS: [&str; 5] = ["name", "state", "health", "phi", "rtt_ms"];

struct View {
    members: Vec<Value>,
    events: Vec<String>,
    sort: usize,
    reverse: bool,
    filter: String,
    typing: bool,
    state: Option<&'static str>,
    error: Option<String>,
}

fn state_color(state: &str) -> Color {
    match state {
        "alive" => Color::Green,
        "suspect" => Color::Yellow,
        "dead" => Color::Red,
        _ => Color::DarkGray,
    }
}

fn meta_text(m: &Value) -> String {
    m.get("meta")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(" ")
        })
        .unwrap_or_default()
}

fn s<'a>(m: &'a Value, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

impl View {
    fn visible(&self) -> Vec<&Value> {
        let q = self.filter.to_lowercase();
        let mut v: Vec<&Value> = self
            .members
            .iter()
            .filter(|m| self.state.is_none_or(|st| s(m, "state") == st))
            .filter(|m| {
                q.is_empty()
                    || format!("{} {} {}", s(m, "name"), s(m, "addr"), meta_text(m))
                        .to_lowercase()
                        .contains(&q)
            })
            .collect();
        let key = SORTS[self.sort];
        v.sort_by(|a, b| {
            let o = match key {
                "phi" | "rtt_ms" => {
                    let f = |m: &Value| m.get(key).and_then(Value::as_f64).unwrap_or(f64::INFINITY);
                    f(a).total_cmp(&f(b))
                }
                "health" => s(&a["health"], "status").cmp(s(&b["health"], "status")),
                _ => s(a, key).cmp(s(b, key)),
            };
            o.then_with(|| s(a, "name").cmp(s(b, "name")))
        });
        if self.reverse {
            v.reverse();
        }
        v
    }

    fn draw(&self, f: &mut ratatui::Frame<'_>) {
        let [head, body, foot] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(5), Constraint::Length(1)])
                .areas(f.area());
        let [table_area, events_area] =
            Layout::horizontal([Constraint::Percentage(65), Constraint::Percentage(35)]).areas(body);
        let count = |st: &str| self.members.iter().filter(|m| s(m, "state") == st).count();
        let summary = Line::from(vec![
            Span::styled(" vigil top ", Style::default().add_modifier(Modifier::BOLD)),
            Span::styled(format!(" {} alive ", count("alive")), Style::default().fg(Color::Green)),
            Span::styled(format!(" {} suspect ", count("suspect")), Style::default().fg(Color::Yellow)),
            Span::styled(format!(" {} failed ", count("dead")), Style::default().fg(Color::Red)),
            Span::styled(format!(" {} left ", count("left")), Style::default().fg(Color::DarkGray)),
            Span::raw(self.error.as_deref().map(|e| format!("  ! {e}")).unwrap_or_default()),
        ]);
        f.render_widget(Paragraph::new(summary), head);

        let rows = self.visible().into_iter().map(|m| {
            let st = s(m, "state");
            let health = format!("{} {}", s(&m["health"], "status"), s(&m["health"], "reason"));
            let phi = m.get("phi").and_then(Value::as_f64).map_or("-".into(), |p| format!("{p:.1}"));
            let rtt = m.get("rtt_ms").and_then(Value::as_f64).map_or("-".into(), |r| format!("{r:.2}"));
            Row::new(vec![
                Cell::from(printable(s(m, "name"))),
                Cell::from(s(m, "addr").to_string()),
                Cell::from(if st == "dead" { "failed" } else { st }.to_string())
                    .style(Style::default().fg(state_color(st))),
                Cell::from(printable(&health)),
                Cell::from(phi),
                Cell::from(rtt),
                Cell::from(printable(&meta_text(m))),
            ])
        });
        let title = format!(
            " members — sort: {}{} — state: {} — filter: {}{} ",
            SORTS[self.sort],
            if self.reverse { " (reversed)" } else { "" },
            self.state.unwrap_or("all"),
            self.filter,
            if self.typing { "▏" } else { "" }
        );
        let table = Table::new(
            rows,
            [
                Constraint::Percentage(18),
                Constraint::Percentage(18),
                Constraint::Length(8),
                Constraint::Percentage(20),
                Constraint::Length(6),
                Constraint::Length(8),
                Constraint::Percentage(24),
            ],
        )
        .header(
            Row::new(["name", "address", "state", "health", "phi", "rtt ms", "metadata"])
                .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(Block::default().borders(Borders::ALL).title(title));
        f.render_widget(table, table_area);

        let items: Vec<ListItem<'_>> = self.events.iter().rev().map(|e| ListItem::new(e.as_str())).collect();
        f.render_widget(
            List::new(items).block(Block::default().borders(Borders::ALL).title(" recent events ")),
            events_area,
        );
        f.render_widget(
            Paragraph::new(
                " q quit · s sort · r reverse · / filter · a/1/2/3/4 state: all/alive/suspect/failed/left",
            ),
            foot,
        );
    }

    /// Handles a key; false to quit.
    fn key(&mut self, code: KeyCode) -> bool {
        if self.typing {
            match code {
                KeyCode::Enter | KeyCode::Esc => self.typing = false,
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) => self.filter.push(c),
                _ => {}
            }
            return true;
        }
        match code {
            KeyCode::Char('q') | KeyCode::Esc => return false,
            KeyCode::Char('s') => self.sort = (self.sort + 1) % SORTS.len(),
            KeyCode::Char('r') => self.reverse = !self.reverse,
            KeyCode::Char('/') => self.typing = true,
            KeyCode::Char('a') => self.state = None,
            KeyCode::Char('1') => self.state = Some("alive"),
            KeyCode::Char('2') => self.state = Some("suspect"),
            KeyCode::Char('3') => self.state = Some("dead"),
            KeyCode::Char('4') => self.state = Some("left"),
            _ => {}
        }
        true
    }
}

/// Follows the event stream in a thread; lines arrive on the channel.
fn follow_events(base: String, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        loop {
            if let Ok(resp) = agent.get(&format!("{base}/v1/events")).call() {
                let reader = BufReader::new(resp.into_body().into_reader());
                for line in reader.lines() {
                    let Ok(line) = line else { break };
                    if let Some(d) = line.strip_prefix("data:")
                        && let Ok(v) = serde_json::from_str::<Value>(d.trim_start())
                        && tx.send(describe(&v)).is_err()
                    {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
}

/// Runs the view until the user quits.
pub fn run(http: &str) -> Result<(), ClientError> {
    let base = base_url(http);
    // Fail early, before taking over the terminal, if there is no agent.
    let first = get(&base, "/v1/members")?;
    let (tx, rx) = mpsc::channel();
    follow_events(base.clone(), tx);
    let mut view = View {
        members: first.as_array().cloned().unwrap_or_default(),
        events: Vec::new(),
        sort: 0,
        reverse: false,
        filter: String::new(),
        typing: false,
        state: None,
        error: None,
    };
    let mut terminal = ratatui::init();
    let result = (|| -> std::io::Result<()> {
        let mut last_poll = Instant::now();
        loop {
            while let Ok(line) = rx.try_recv() {
                view.events.push(line);
                if view.events.len() > 200 {
                    view.events.remove(0);
                }
            }
            if last_poll.elapsed() >= Duration::from_secs(1) {
                last_poll = Instant::now();
                match get(&base, "/v1/members") {
                    Ok(v) => {
                        view.members = v.as_array().cloned().unwrap_or_default();
                        view.error = None;
                    }
                    Err(e) => view.error = Some(e.0),
                }
            }
            terminal.draw(|f| view.draw(f))?;
            if event::poll(Duration::from_millis(200))?
                && let Event::Key(k) = event::read()?
                && k.kind == KeyEventKind::Press
                && !view.key(k.code)
            {
                return Ok(());
            }
        }
    })();
    ratatui::restore();
    result.map_err(|e| ClientError(format!("terminal: {e}")))
}
