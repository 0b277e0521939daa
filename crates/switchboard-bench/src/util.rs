//! Small helpers: durations, URLs, the shared clock, RLIMIT_NOFILE, /proc.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One process-local epoch: publisher and subscribers live in the same process,
/// so nanoseconds since this instant are a clock shared through the payload.
static EPOCH: OnceLock<Instant> = OnceLock::new();

pub fn init_clock() {
    EPOCH.get_or_init(Instant::now);
}

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[inline]
pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// `10s`, `500ms`, `2m`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mul) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?}"))?;
    if v.is_nan() || v < 0.0 {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(v * mul))
}

/// A parsed `ws://host:port/path` (or `tcp://host:port`).
#[derive(Clone, Debug)]
pub struct Target {
    /// `host:port` as written, for the Host header.
    pub host: String,
    pub addr: SocketAddr,
    pub path: String,
}

pub fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("tcp://"))
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url}: only ws:// (or tcp://) URLs are supported"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let hostport_full = if hostport.contains(':') && !hostport.ends_with(']') {
        hostport.to_owned()
    } else {
        format!("{hostport}:80")
    };
    let addr = hostport_full
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    Ok(Target {
        host: hostport.to_owned(),
        addr,
        path: path.to_owned(),
    })
}

/// Raises this process' soft RLIMIT_NOFILE to its hard limit; returns the new soft limit.
// `rlim_t` is `u64` on Linux only
#[allow(clippy::unnecessary_cast)]
pub fn raise_nofile() -> u64 {
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return want.rlim_cur as u64;
            }
        }
        r.rlim_cur as u64
    }
}

/// VmRSS of a process in bytes, from /proc/PID/status.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    status_bytes(pid, "VmRSS")
}

/// RssAnon of a process in bytes: its resident memory without the pages of
/// files it mapped (the binary's code, read in as it runs).
pub fn rss_anon_bytes(pid: u32) -> io::Result<u64> {
    status_bytes(pid, "RssAnon")
}

/// A `kB` line of /proc/PID/status, in bytes.
fn status_bytes(pid: u32, key: &str) -> io::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    for line in s.lines() {
        if let Some(v) = line.strip_prefix(key).and_then(|v| v.strip_prefix(':')) {
            let kb: u64 = v
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .map_err(|_| io::Error::other(key.to_owned()))?;
            return Ok(kb * 1024);
        }
    }
    Err(io::Error::other(format!("no {key}")))
}

/// A process and all its descendants (a server started through a wrapper
/// such as `taskset`, `node` or a shell script is measured whole).
fn process_tree(pid: u32, into: &mut Vec<u32>) {
    into.push(pid);
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        for c in children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            process_tree(c, into);
        }
    }
}

/// `f` of a process plus `f` of each of its live descendants (one that ends
/// before it is read counts for nothing).
fn over_tree<T: std::ops::Add<Output = T> + Default>(
    pid: u32,
    f: impl Fn(u32) -> io::Result<T>,
) -> io::Result<T> {
    let mut tree = Vec::new();
    process_tree(pid, &mut tree);
    let mut total = f(pid)?;
    for &p in &tree[1..] {
        total = total + f(p).unwrap_or_default();
    }
    Ok(total)
}

/// Sum of VmRSS of a process and all its descendants.
pub fn rss_tree_bytes(pid: u32) -> io::Result<u64> {
    over_tree(pid, rss_bytes)
}

/// CPU time of a process and all its live descendants, in seconds.
pub fn cpu_tree_seconds(pid: u32) -> io::Result<f64> {
    over_tree(pid, cpu_seconds)
}

/// CPU time (user + system) a process has used so far, in seconds, from
/// /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // the fields after the command name, which is in parentheses: state is
    // field 3, utime 14, stime 15
    let rest = s
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("bad /proc stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> io::Result<u64> {
        f.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| io::Error::other("bad /proc stat"))
    };
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Ok((ticks(11)? + ticks(12)?) as f64 / hz)
}

/// The 1-minute load average, from /proc/loadavg.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Local source address number `i` of `n` in 127.0.0.1 ..= 127.0.0.n (for more ephemeral ports).
pub fn source_ip(i: usize, n: usize) -> Option<IpAddr> {
    if n <= 1 {
        return None;
    }
    Some(IpAddr::from([127, 0, 0, 1 + (i % n) as u8]))
}

/// `KEY=VALUE` pairs (`--node-env`), each split at its first `=`.
pub fn parse_env_pairs(list: &[String]) -> Result<Vec<(String, String)>, String> {
    list.iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("--node-env {kv}: expected KEY=VALUE"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn urls() {
        let t = parse_url("ws://127.0.0.1:8080/ws/topic/bench").unwrap();
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.path, "/ws/topic/bench");
        assert_eq!(parse_url("tcp://127.0.0.1:9").unwrap().path, "/");
        assert!(parse_url("wss://x:1/").is_err());
    }

    #[test]
    fn source_ips() {
        assert_eq!(source_ip(5, 1), None);
        assert_eq!(source_ip(5, 4), Some(IpAddr::from([127, 0, 0, 2])));
    }

    #[test]
    fn own_rss() {
        assert!(rss_tree_bytes(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn own_cpu_time() {
        let t0 = cpu_seconds(std::process::id()).unwrap();
        let until = Instant::now() + Duration::from_millis(50);
        let mut x = 0u64;
        while Instant::now() < until {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(cpu_seconds(std::process::id()).unwrap() >= t0);
        assert!(load_average().is_some());
    }
}
