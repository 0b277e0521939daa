//! A load generator run watched from outside, as the suites run it: the
//! servers' RSS before the load and at its peak (sampled every 200 ms), and
//! their CPU time (with children) over the measured window, which the load generator marks on
//! its stderr (`--mark-window`: [`WINDOW_OPEN`], [`WINDOW_CLOSE`]); its other
//! stderr lines go on to ours.

use std::io::BufRead as _;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::fanout::{WINDOW_CLOSE, WINDOW_OPEN};
use crate::util::{cpu_tree_seconds, rss_tree_bytes};

/// What was seen of one group of processes (a server, the nodes of a
/// cluster, a redis-server) while the load generator ran.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Seen {
    /// VmRSS (with children) summed over the group, before the load generator started
    pub start_rss: u64,
    /// the highest such sum sampled while it ran (at least `start_rss`)
    pub peak_rss: u64,
    /// CPU time over the measured window ÷ its length, in cores; 0 when the
    /// load generator marked no window
    pub cpu: f64,
}

/// Runs `cmd` (a load generator; stdout is captured, stderr watched for the
/// window marks) to its end, watching each group of pids.
pub fn run(cmd: &mut Command, groups: &[&[u32]]) -> Result<(Output, Vec<Seen>), String> {
    let rss_now =
        |pids: &[u32]| -> u64 { pids.iter().map(|&p| rss_tree_bytes(p).unwrap_or(0)).sum() };
    let cpu_now = |pids: &[u32]| -> f64 {
        pids.iter()
            .map(|&p| cpu_tree_seconds(p).unwrap_or(0.0))
            .sum()
    };
    let mut seen: Vec<Seen> = groups
        .iter()
        .map(|g| {
            let rss = rss_now(g);
            Seen {
                start_rss: rss,
                peak_rss: rss,
                cpu: 0.0,
            }
        })
        .collect();
    let mut lg = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("load generator: {e}"))?;
    let (tx, rx) = mpsc::channel::<bool>();
    let stderr = lg.stderr.take().expect("piped");
    let fwd = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line == WINDOW_OPEN || line == WINDOW_CLOSE {
                let _ = tx.send(line == WINDOW_OPEN);
            } else {
                eprintln!("{line}");
            }
        }
    });
    let mut opened: Option<(Instant, Vec<f64>)> = None;
    let mut mark = |open: bool, seen: &mut [Seen]| {
        if open {
            opened = Some((Instant::now(), groups.iter().map(|g| cpu_now(g)).collect()));
        } else if let Some((t0, cpu0)) = opened.take() {
            let secs = t0.elapsed().as_secs_f64();
            for ((s, g), c0) in seen.iter_mut().zip(groups).zip(cpu0) {
                s.cpu = (cpu_now(g) - c0) / secs;
            }
        }
    };
    while lg.try_wait().map_err(|e| e.to_string())?.is_none() {
        for (s, g) in seen.iter_mut().zip(groups) {
            s.peak_rss = s.peak_rss.max(rss_now(g));
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(open) => mark(open, &mut seen),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // stderr closed: the load generator is ending
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(50))
            }
        }
    }
    let _ = fwd.join();
    // a mark read after the load generator's exit was seen (a window that
    // closed just before it exits)
    while let Ok(open) = rx.try_recv() {
        mark(open, &mut seen);
    }
    let out = lg
        .wait_with_output()
        .map_err(|e| format!("load generator: {e}"))?;
    Ok((out, seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in load generator (a shell) that burns CPU in this group's
    /// process only between its marks: the window's CPU is measured, the
    /// marks are not passed on, and RSS is read.
    #[test]
    fn cpu_is_measured_over_the_marked_window_only() {
        let me = std::process::id();
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            &format!("sleep 0.3; echo {WINDOW_OPEN} >&2; sleep 0.6; echo {WINDOW_CLOSE} >&2; echo '{{}}'"),
        ]);
        // burn CPU in this process while the shell waits in its window
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let burner = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            })
        };
        let (out, seen) = run(&mut cmd, &[&[me], &[]]).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        burner.join().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "{}");
        // one thread spinning (the test runner's others mostly wait): about a core
        assert!(seen[0].cpu > 0.3 && seen[0].cpu < 4.0, "{:?}", seen[0]);
        assert!(seen[0].start_rss > 0 && seen[0].peak_rss >= seen[0].start_rss);
        assert_eq!(seen[1], Seen::default());
    }
}
