//! `netmon top`: iftop's live screen, fed by the kernel's exact counts. An edge: the terminal,
//! keys and signals.
//!
//! - [`state`]: what the screen shows and iftop's keys (pure).
//! - [`rows`]: flows grouped, narrowed and ordered into rows (pure).
//! - [`view`]: the screen as text for a terminal size (pure).
//! - [`draw`]: that text on the terminal, with ratatui.
//!
//! The counting is the agent's: an [`Agent`] watching the one interface, every second, with
//! the same history (`netmon::window`) the agent's metrics and `/mcp` use.

pub mod draw;
pub mod rows;
pub mod state;
pub mod view;

use crate::agent::{Agent, AgentOptions};
use crate::error::{Error, Result};
use crate::interface::InterfaceInfo;
use crate::names::{Namer, Services};
use crate::owner::{Owner, procfs};
use crate::window::Rolling;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::crossterm::{cursor, execute};
use rows::{OwnerKey, RowKey};
use state::{Action, Key, State};
use std::collections::{HashMap, HashSet};
use std::io::IsTerminal as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often the screen takes new figures, as iftop does.
const REFRESH: Duration = Duration::from_secs(1);
/// How long the first collection may take before `top` gives up on the interface.
const FIRST_COLLECTION: Duration = Duration::from_secs(10);
/// Most rows named per refresh: more would be lookups for rows nobody sees.
const NAMED_ROWS: usize = 200;

/// What the terminal said.
enum Input {
    Key(Key),
    Resize,
}

fn key_of(k: KeyEvent) -> Option<Key> {
    if k.kind == KeyEventKind::Release {
        return None;
    }
    Some(match k.code {
        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => Key::Interrupt,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        _ => return None,
    })
}

/// Raw mode and the alternate screen while it lives; the terminal as it was after, on every
/// way out (return, error, panic).
struct TerminalGuard;

fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(std::io::stdout(), LeaveAlternateScreen, cursor::Show);
}

impl TerminalGuard {
    fn enter() -> Result<Self> {
        terminal::enable_raw_mode().map_err(Error::Terminal)?;
        let guard = Self;
        execute!(std::io::stdout(), EnterAlternateScreen, cursor::Hide).map_err(Error::Terminal)?;
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Keys and resizes from a thread of their own (crossterm's reads block), until `stop`.
fn read_input(tx: mpsc::UnboundedSender<Input>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match event::poll(Duration::from_millis(200)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return,
        }
        let input = match event::read() {
            Ok(Event::Key(k)) => key_of(k).map(Input::Key),
            Ok(Event::Resize(..)) => Some(Input::Resize),
            Ok(_) => None,
            Err(_) => return,
        };
        if let Some(i) = input
            && tx.send(i).is_err()
        {
            return;
        }
    }
}

/// The figures one screen is drawn from.
#[derive(Default)]
struct Figures {
    rows: Vec<(RowKey, Rolling)>,
    owners: HashMap<OwnerKey, Arc<Owner>>,
    exited: HashSet<u32>,
    totals: Rolling,
    unattributed: u64,
    names: HashMap<IpAddr, String>,
    table: Option<(usize, u32)>,
}

/// Whether process `pid` is still the one named `comm` (not exited, its pid not reused).
fn running(pid: u32, comm: &str) -> bool {
    procfs::read_text(&format!("/proc/{pid}/comm"), procfs::SMALL_MAX)
        .is_some_and(|c| c.trim() == comm)
}

/// Takes the figures from the agent's history as `state` groups and orders them.
fn figures(
    agent: &Agent,
    iface: &InterfaceInfo,
    state: &State,
    namer: &Namer,
    services: Option<&Services>,
    previous: &[RowKey],
) -> Option<Figures> {
    let ((rows, owners), totals, unattributed) =
        agent.with_owned_history(iface.index, |h, owned| {
            let grouped = rows::group(h, owned, state);
            let totals = if state.selection.is_all() && state.drill.is_none() {
                h.interface()
            } else {
                rows::selected_totals(h, owned, state)
            };
            let unattributed = h.rx_total.kernel.overflow_bytes + h.tx_total.kernel.overflow_bytes;
            (grouped, totals, unattributed)
        })?;
    // Rows of processes that exited stay while their bytes are in the windows, marked.
    let exited = rows
        .iter()
        .filter_map(|(k, _)| match k {
            RowKey::Owner(OwnerKey::Process { pid, comm }) if !running(*pid, comm) => Some(*pid),
            _ => None,
        })
        .collect();
    let mut addrs: Vec<IpAddr> = Vec::new();
    let names = if state.names {
        // Name the busiest rows first; lookups for the rest wait for a later refresh.
        let mut busiest: Vec<&(RowKey, Rolling)> = rows.iter().collect();
        busiest.sort_by(|a, b| b.1.averages[2].total().total_cmp(&a.1.averages[2].total()));
        for (k, _) in busiest.into_iter().take(NAMED_ROWS) {
            if let RowKey::Ends(e) = k {
                addrs.extend(e.local.iter().chain(&e.remote));
            }
        }
        addrs.sort();
        addrs.dedup();
        namer.names_now(&addrs)
    } else {
        HashMap::new()
    };
    let rows = rows::order(rows, state, previous, |k| match k {
        RowKey::Ends(e) => view::label(e, state, &names, services),
        RowKey::Owner(o) => (view::owner_label(o, &owners, &exited), String::new()),
    });
    let (v4, v6, capacity) = agent.table_fill();
    Some(Figures {
        rows,
        owners,
        exited,
        totals,
        unattributed,
        names,
        table: Some((v4.max(v6), capacity)),
    })
}

/// Runs the screen on `iface` until q, Ctrl-C or SIGTERM; the classifier is detached and the
/// terminal restored on the way out.
pub async fn run(iface: InterfaceInfo, mut state: State, opts: AgentOptions) -> Result<()> {
    if !std::io::stdout().is_terminal() {
        return Err(Error::NotATerminal);
    }
    let agent = Agent::new(opts)?;
    let stop_agent = CancellationToken::new();
    let collecting = tokio::spawn(agent.clone().run(stop_agent.clone()));
    let result = screen(&agent, &iface, &mut state).await;
    stop_agent.cancel();
    let _ = collecting.await;
    result
}

async fn screen(agent: &Arc<Agent>, iface: &InterfaceInfo, state: &mut State) -> Result<()> {
    // Attached and counting before the screen takes the terminal, so an error reads normally.
    let started = tokio::time::Instant::now();
    while agent.with_history(iface.index, |_| ()).is_none() {
        if started.elapsed() > FIRST_COLLECTION {
            return Err(Error::NotWatching {
                iface: iface.name.clone(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let namer = Namer::default();
    let services = namer.service_table().ok();
    let mut term_signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(Error::Terminal)?;

    let guard = TerminalGuard::enter()?;
    // Log lines would land in the middle of the screen.
    let level = log::max_level();
    log::set_max_level(log::LevelFilter::Off);
    let mut terminal = ratatui::Terminal::new(CrosstermBackend::new(std::io::stdout()))
        .map_err(Error::Terminal)?;
    terminal.clear().map_err(Error::Terminal)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stop_input = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop_input.clone();
        std::thread::spawn(move || read_input(tx, stop))
    };

    let mut order: Vec<RowKey> = Vec::new();
    let mut figs = Figures::default();
    let mut refresh = tokio::time::interval(REFRESH);
    let result = loop {
        let mut retake = false;
        tokio::select! {
            _ = refresh.tick() => retake = !state.paused,
            input = rx.recv() => match input {
                Some(Input::Key(k)) => {
                    let page = usize::from(terminal.size().map(|s| s.height).unwrap_or(24)) / 2;
                    match state.key(k, page) {
                        Action::Quit => break Ok(()),
                        Action::Regroup => retake = true,
                        Action::Redraw => {}
                        Action::Open => {
                            // The row under the cursor, as the screen lists the rows.
                            let shown: Vec<&RowKey> = figs.rows.iter().map(|(k, _)| k).collect();
                            if let Some(RowKey::Owner(o)) =
                                shown.get(state.cursor.min(shown.len().saturating_sub(1)))
                            {
                                state.drill = Some((*o).clone());
                                state.scroll = 0;
                                retake = true;
                            }
                        }
                    }
                }
                Some(Input::Resize) => {}
                None => break Ok(()),
            },
            _ = term_signal.recv() => break Ok(()),
            _ = tokio::signal::ctrl_c() => break Ok(()),
        }
        if retake && let Some(f) = figures(agent, iface, state, &namer, services.as_ref(), &order) {
            order = f.rows.iter().map(|(k, _)| k.clone()).collect();
            figs = f;
        }
        let data = view::Data {
            iface: &iface.name,
            rows: &figs.rows,
            owners: &figs.owners,
            exited: &figs.exited,
            totals: &figs.totals,
            unattributed: figs.unattributed,
            table: figs.table,
            names: &figs.names,
            services: services.as_ref(),
        };
        let drawn = terminal.draw(|f| {
            let area = f.area();
            let s = view::screen(
                &data,
                state,
                usize::from(area.width),
                usize::from(area.height),
            );
            draw::draw(f, &s);
        });
        if let Err(e) = drawn {
            break Err(Error::Terminal(e));
        }
    };
    stop_input.store(true, Ordering::Relaxed);
    drop(guard);
    log::set_max_level(level);
    let _ = reader.join();
    result
}
