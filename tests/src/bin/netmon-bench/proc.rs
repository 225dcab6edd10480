//! What the kernel accounts to a process: CPU seconds at exit (wait4's rusage, the same
//! utime/stime /proc/PID/stat reports, at microsecond rather than tick resolution) and resident
//! memory from /proc/PID/status.

use std::time::{Duration, Instant};

/// How a child ended, and the CPU it used over its whole life.
pub struct Exit {
    pub status: i32,
    pub user_s: f64,
    pub sys_s: f64,
}

impl Exit {
    pub fn success(&self) -> bool {
        libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == 0
    }

    pub fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }
}

fn seconds(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

/// Reaps child `pid` (one this process spawned), killing it first if it is still running after
/// `timeout`. The std `Child` handle must not be waited on afterwards.
pub fn reap(pid: u32, timeout: Duration) -> Exit {
    let deadline = Instant::now() + timeout;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut killed = false;
    loop {
        let flags = if killed { 0 } else { libc::WNOHANG };
        // SAFETY: pid is our own child; status and ru are live out-parameters.
        let r = unsafe { libc::wait4(pid as i32, &mut status, flags, &mut ru) };
        if r == pid as i32 {
            break;
        }
        if r < 0 {
            // Already reaped elsewhere: nothing to account.
            return Exit {
                status: -1,
                user_s: 0.0,
                sys_s: 0.0,
            };
        }
        if Instant::now() >= deadline {
            eprintln!("netmon-bench: pid {pid} still running after {timeout:?}; killing it");
            // SAFETY: pid is our unreaped child, so it cannot have been reused.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            killed = true;
            continue;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Exit {
        status,
        user_s: seconds(ru.ru_utime),
        sys_s: seconds(ru.ru_stime),
    }
}

/// CPU seconds all threads of `pid` have used so far (user + system), from each thread's
/// /proc/PID/task/TID/schedstat (nanoseconds, unlike /proc/PID/stat's 10 ms ticks).
pub fn cpu_so_far(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum::<u64>() as f64
        / 1e9
}

/// A field of /proc/PID/status in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}
