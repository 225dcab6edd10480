//! A real terminal for `netmon top`: a detached tmux session of a given size. `capture-pane`
//! reads the screen, `send-keys` types. The session is killed on drop.

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    pub session: String,
}

fn tmux(args: &[&str]) -> std::process::Output {
    Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux (apt-get install tmux)")
}

impl Tmux {
    /// `command` (a shell command line) in a new session of `width` × `height` cells, kept on
    /// screen after it exits so its last state can be read.
    pub fn start(command: &str, width: u16, height: u16) -> Self {
        let session = crate::unique("nmtop");
        let out = tmux(&[
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        let t = Self { session };
        tmux(&["set-option", "-t", &t.session, "remain-on-exit", "on"]);
        t
    }

    pub fn capture(&self) -> String {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &self.session]).stdout)
            .into_owned()
    }

    /// Waits (bounded) until the screen shows `needle`; returns the screen.
    pub fn wait_for(&self, needle: &str, bound: Duration) -> String {
        let deadline = Instant::now() + bound;
        loop {
            let s = self.capture();
            if s.contains(needle) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} not on the screen within {bound:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types keys, as tmux names them (`q`, `C-c`, `Enter`).
    pub fn keys(&self, keys: &str) {
        tmux(&["send-keys", "-t", &self.session, keys]);
    }

    /// A pane variable (`pane_dead`, `alternate_on`, `pane_pid`, …).
    pub fn pane(&self, var: &str) -> String {
        let f = format!("#{{{var}}}");
        String::from_utf8_lossy(&tmux(&["display-message", "-p", "-t", &self.session, &f]).stdout)
            .trim()
            .to_string()
    }

    pub fn resize(&self, width: u16, height: u16) {
        tmux(&[
            "resize-window",
            "-t",
            &self.session,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
        ]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        tmux(&["kill-session", "-t", &self.session]);
    }
}
