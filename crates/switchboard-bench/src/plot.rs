//! `plot`: SVG charts from a suite's raw reports (the JSON lines of
//! `suite --json-out`). For each scenario, the latency percentiles of every
//! server (medians over the repetitions, log scale) and the throughput over
//! the measured window (each server's repetition 1, from the reports'
//! `timeline`). Plain SVG written here: no plotting dependency.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// the suite's raw reports (`suite --json-out FILE`)
    #[arg(long)]
    pub input: PathBuf,
    /// directory for the SVG files (SCENARIO-latency.svg, SCENARIO-throughput.svg)
    #[arg(long)]
    pub out: PathBuf,
    /// scenarios, comma-separated (default: every one in the file)
    #[arg(long)]
    pub scenarios: Option<String>,
    /// prefix of the file names (e.g. a date)
    #[arg(long, default_value = "")]
    pub prefix: String,
}

const W: f64 = 760.0;
const H: f64 = 400.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 6] = [
    "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#7f7f7f",
];

/// One server's runs of one scenario.
struct Series {
    server: String,
    runs: Vec<Value>,
}

pub fn run(a: PlotArgs) -> Result<(), String> {
    let text =
        std::fs::read_to_string(&a.input).map_err(|e| format!("{}: {e}", a.input.display()))?;
    let reports: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", a.input.display()))?;
    let wanted: Option<Vec<&str>> = a
        .scenarios
        .as_deref()
        .map(|s| s.split(',').map(str::trim).collect());
    // scenarios and servers in the order they first appear
    let mut scenarios: Vec<(String, Vec<Series>)> = Vec::new();
    for r in reports {
        let (Some(sc), Some(server)) = (r["suite_scenario"].as_str(), r["server"].as_str()) else {
            continue;
        };
        if wanted.as_ref().is_some_and(|w| !w.contains(&sc)) {
            continue;
        }
        let i = match scenarios.iter().position(|(s, _)| s == sc) {
            Some(i) => i,
            None => {
                scenarios.push((sc.to_string(), Vec::new()));
                scenarios.len() - 1
            }
        };
        let series = &mut scenarios[i].1;
        match series.iter_mut().find(|s| s.server == server) {
            Some(s) => s.runs.push(r),
            None => series.push(Series {
                server: server.to_string(),
                runs: vec![r],
            }),
        }
    }
    if scenarios.is_empty() {
        return Err(format!("no suite reports in {}", a.input.display()));
    }
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    for (sc, series) in &scenarios {
        let write = |kind: &str, svg: Option<String>| -> Result<(), String> {
            let Some(svg) = svg else { return Ok(()) };
            let p = a.out.join(format!("{}{sc}-{kind}.svg", a.prefix));
            std::fs::write(&p, svg).map_err(|e| format!("{}: {e}", p.display()))?;
            println!("{}", p.display());
            Ok(())
        };
        write("latency", latency_chart(sc, series))?;
        write("throughput", throughput_chart(sc, series))?;
    }
    Ok(())
}

/// The median of the positive, finite values; None when there are none.
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite() && *x > 0.0);
    (!v.is_empty()).then(|| crate::suite::median(v))
}

/// p50, p99, p99.9 and max of each server (ms, medians over the repetitions
/// that have latency samples), on a log scale. None when no server has any.
fn latency_chart(scenario: &str, series: &[Series]) -> Option<String> {
    const KEYS: [(&str, &str); 4] = [
        ("p50_us", "p50"),
        ("p99_us", "p99"),
        ("p999_us", "p99.9"),
        ("max_us", "max"),
    ];
    let lines: Vec<(&str, Vec<Option<f64>>)> = series
        .iter()
        .map(|s| {
            let with: Vec<&Value> = s
                .runs
                .iter()
                .filter(|r| r["latency"]["samples"].as_u64().unwrap_or(0) > 0)
                .collect();
            let pts = KEYS
                .iter()
                .map(|(k, _)| {
                    median(
                        with.iter()
                            .filter_map(|r| r["latency"][k].as_f64())
                            .map(|us| us / 1000.0)
                            .collect(),
                    )
                })
                .collect();
            (s.server.as_str(), pts)
        })
        .filter(|(_, p): &(&str, Vec<Option<f64>>)| p.iter().any(Option::is_some))
        .collect();
    let all: Vec<f64> = lines
        .iter()
        .flat_map(|(_, p)| p.iter().flatten().copied())
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(0.0, f64::max);
    if !lo.is_finite() {
        return None;
    }
    let (d0, d1) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let y = |ms: f64| TOP + (H - TOP - BOTTOM) * (1.0 - (ms.log10() - d0) / (d1 - d0));
    let x = |i: usize| LEFT + (W - LEFT - RIGHT) * (i as f64 + 0.5) / KEYS.len() as f64;
    let mut svg = open_svg(&format!(
        "{scenario}: latency percentiles (median of the repetitions)"
    ));
    for d in (d0 as i32)..=(d1 as i32) {
        let v = 10f64.powi(d);
        grid_y(&mut svg, y(v), &fmt_ms(v));
    }
    for (i, (_, label)) in KEYS.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            x(i),
            H - BOTTOM + 20.0
        );
    }
    axis_labels(&mut svg, "percentile", "latency (ms, log)");
    for (li, (server, pts)) in lines.iter().enumerate() {
        let c = COLORS[li % COLORS.len()];
        let path: Vec<String> = pts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for p in &path {
            let (px, py) = p.split_once(',').expect("x,y");
            let _ = writeln!(svg, r#"<circle cx="{px}" cy="{py}" r="3.5" fill="{c}"/>"#);
        }
        legend(&mut svg, li, c, server);
    }
    Some(close_svg(svg))
}

/// Throughput in each 100 ms of the window, repetition 1 of each server.
/// None when no report has a timeline.
fn throughput_chart(scenario: &str, series: &[Series]) -> Option<String> {
    let lines: Vec<(&str, Vec<f64>)> = series
        .iter()
        .filter_map(|s| {
            let r = s
                .runs
                .iter()
                .find(|r| r["rep"].as_u64() == Some(1))
                .or(s.runs.first())?;
            let t: Vec<f64> = r["timeline"]
                .as_array()?
                .iter()
                .filter_map(Value::as_f64)
                .collect();
            (!t.is_empty()).then_some((s.server.as_str(), t))
        })
        .collect();
    if lines.is_empty() {
        return None;
    }
    let n = lines.iter().map(|(_, t)| t.len()).max().unwrap_or(1);
    let secs = n as f64 / 10.0;
    let hi = lines
        .iter()
        .flat_map(|(_, t)| t.iter().copied())
        .fold(0.0, f64::max);
    let top = nice_ceiling(hi * 1.05);
    let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - v / top);
    let x = |t: f64| LEFT + (W - LEFT - RIGHT) * t / secs;
    let mut svg = open_svg(&format!(
        "{scenario}: throughput over the measured window (repetition 1)"
    ));
    for k in 0..=5 {
        let v = top * k as f64 / 5.0;
        grid_y(&mut svg, y(v), &fmt_rate(v));
    }
    for s in 0..=(secs.floor() as u32) {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{s}</text>"#,
            x(f64::from(s)),
            H - BOTTOM + 20.0
        );
    }
    axis_labels(
        &mut svg,
        "seconds into the window",
        "per second (100 ms buckets)",
    );
    for (li, (server, t)) in lines.iter().enumerate() {
        let c = COLORS[li % COLORS.len()];
        let pts: Vec<String> = t
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x((i as f64 + 0.5) / 10.0), y(*v)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{c}" stroke-width="1.8" points="{}"/>"#,
            pts.join(" ")
        );
        legend(&mut svg, li, c, server);
    }
    Some(close_svg(svg))
}

fn open_svg(title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
        W - LEFT - RIGHT,
        H - TOP - BOTTOM
    );
    s
}

fn close_svg(mut s: String) -> String {
    s.push_str("</svg>\n");
    s
}

fn grid_y(svg: &mut String, y: f64, label: &str) {
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
        W - RIGHT
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{:.1}" text-anchor="end">{label}</text>"#,
        LEFT - 6.0,
        y + 4.0
    );
}

fn axis_labels(svg: &mut String, x_label: &str, y_label: &str) {
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{x_label}</text>"#,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 10.0
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(16,{:.1}) rotate(-90)" text-anchor="middle">{y_label}</text>"#,
        TOP + (H - TOP - BOTTOM) / 2.0
    );
}

fn legend(svg: &mut String, i: usize, color: &str, label: &str) {
    let y = TOP + 14.0 + 20.0 * i as f64;
    let x = W - RIGHT + 14.0;
    let _ = writeln!(
        svg,
        r#"<line x1="{x}" x2="{}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="3"/>"#,
        x + 22.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}">{}</text>"#,
        x + 28.0,
        y + 4.0,
        escape(label)
    );
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// 1, 1.5, 2, 3 or 5 times a power of ten, at least `v` (a fifth of each
/// is a round tick).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 1.5, 2.0, 3.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

fn fmt_ms(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(server: &str, rep: u64, p50_us: f64, timeline: &[f64]) -> Value {
        serde_json::json!({
            "suite_scenario": "fanout", "server": server, "rep": rep,
            "latency": {"samples": 10, "p50_us": p50_us, "p99_us": p50_us * 10.0, "p999_us": p50_us * 20.0, "max_us": p50_us * 30.0},
            "timeline": timeline,
        })
    }

    #[test]
    fn charts_have_a_line_per_server_and_skip_what_is_missing() {
        let series = vec![
            Series {
                server: "switchboard".into(),
                runs: vec![
                    report("switchboard", 1, 1000.0, &[1e6, 1e6]),
                    report("switchboard", 2, 3000.0, &[]),
                ],
            },
            // no latency samples at all: no latency line, but its throughput
            Series {
                server: "node-ws".into(),
                runs: vec![
                    serde_json::json!({"suite_scenario": "fanout", "server": "node-ws", "rep": 1, "latency": {"samples": 0}, "timeline": [9e4]}),
                ],
            },
        ];
        let lat = latency_chart("fanout", &series).unwrap();
        assert_eq!(lat.matches("<polyline").count(), 1, "{lat}");
        assert!(lat.contains(">switchboard</text>") && !lat.contains(">node-ws</text>"));
        // medians: p50 of 1 and 3 ms is 2 ms; the decades 1..100 ms cover it all (max 60 ms)
        assert!(
            lat.contains(">1</text>") && lat.contains(">100</text>"),
            "{lat}"
        );
        let thr = throughput_chart("fanout", &series).unwrap();
        assert_eq!(thr.matches("<polyline").count(), 2);
        // 1 M/s at most: the axis goes to 1.5 M in steps of 0.3 M
        assert!(
            thr.contains(">1.5 M</text>") && thr.contains(">900 k</text>"),
            "{thr}"
        );
        assert!(latency_chart(
            "x",
            &[Series {
                server: "a".into(),
                runs: vec![]
            }]
        )
        .is_none());
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.9e6), 1e6);
        assert_eq!(nice_ceiling(1.05e6), 1.5e6);
        assert_eq!(nice_ceiling(3.0e5), 3e5);
        assert_eq!(nice_ceiling(3.5e5), 5e5);
        assert_eq!(fmt_rate(2e6), "2.0 M");
    }
}
