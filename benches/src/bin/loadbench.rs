//! The side-by-side load bench: each scenario as a real server on 127.0.0.1, driven by a built-in
//! HTTP/1.1 load generator, server and client pinned to different cores.
//!
//! ```text
//! cargo run --release -p tower-edge-benches --bin loadbench -- [--duration SECS] [--connections N]
//!     [--only NAME[,NAME…]] [--rounds N] [--wrk] [--h2load] [--chart FILE] [--smoke] [--list]
//! ```
//!
//! For every scenario it prints requests/s, latency percentiles, the server thread's CPU time per
//! request, and both as ratios to the bare axum handler measured in the same run. The server runs
//! on a single-threaded runtime, so its thread's CPU clock is the whole server cost; on a machine
//! where the load generator saturates first, the CPU ratio is the one to read.
//!
//! With `--rounds N` the whole list runs N times in turn and each scenario is reported over its
//! N runs: on a shared machine a busy spell then falls on every scenario alike, where one long
//! run of each lets it land on a single scenario and move that one's ratio alone.

#![allow(clippy::print_stdout)] // a command-line report

use std::{
    net::SocketAddr,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tower_edge_benches::{Scenario, chart, nginx, paired_baseline, redis::needs_redis, scenarios};

struct Options {
    duration: Duration,
    warmup: Duration,
    rounds: usize,
    connections: usize,
    only: Vec<String>,
    smoke: bool,
    baseline: bool,
    wrk: bool,
    h2load: bool,
    chart: Option<std::path::PathBuf>,
}

const USAGE: &str = "\
loadbench: tower-edge scenarios side by side against a bare axum handler

USAGE:
    loadbench [--duration SECS] [--connections N] [--only NAME[,NAME...]] [--rounds N]
              [--wrk] [--h2load] [--chart FILE]
              [--smoke] [--list]

OPTIONS:
    --duration SECS     measured seconds per scenario (after 1 s of warm-up) [default: 5]
    --connections N     concurrent keep-alive connections [default: 32]
    --only NAMES        run only these scenarios (and the baseline)
    --no-baseline       with --only, skip the baseline (for profiling one scenario)
    --rounds N          run the list N times in turn, and report each scenario over its N runs:
                        the built-in client's requests, time, CPU and latencies summed; wrk's
                        and h2load's requests/s averaged over the runs, wrk's percentiles the
                        means of the runs' own, h2load's mean over all the requests
                        [default: 1]
    --wrk               also drive each scenario with wrk (1 thread, the same connections and
                        duration, pinned to the client's core with taskset), and print its
                        figures next to the built-in generator's
    --h2load            also drive the hit scenarios (and the bare handler) over HTTP/2 without
                        TLS (h2c, prior knowledge) with h2load (1 thread, the same connections,
                        one stream each, pinned like wrk), and print their figures
    --chart FILE        write an SVG chart of requests/s and server CPU per request by scenario
                        (the built-in generator's figures) to FILE
    --smoke             a fraction of a second per scenario: checks every scenario answers right
    --list              list the scenarios
";

fn parse_options() -> Result<Option<Options>, String> {
    let mut opts = Options {
        duration: Duration::from_secs(5),
        warmup: Duration::from_secs(1),
        rounds: 1,
        connections: 32,
        only: Vec::new(),
        smoke: false,
        baseline: true,
        wrk: false,
        h2load: false,
        chart: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--duration" => {
                let secs: f64 = value("--duration")?
                    .parse()
                    .map_err(|e| format!("--duration: {e}"))?;
                if !(0.05..=3600.0).contains(&secs) {
                    return Err("--duration must be between 0.05 and 3600 seconds".into());
                }
                opts.duration = Duration::from_secs_f64(secs);
            }
            "--connections" => {
                opts.connections = value("--connections")?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?;
                if !(1..=4096).contains(&opts.connections) {
                    return Err("--connections must be between 1 and 4096".into());
                }
            }
            "--rounds" => {
                opts.rounds = value("--rounds")?
                    .parse()
                    .map_err(|e| format!("--rounds: {e}"))?;
                if !(1..=100).contains(&opts.rounds) {
                    return Err("--rounds must be between 1 and 100".into());
                }
            }
            "--only" => opts
                .only
                .extend(value("--only")?.split(',').map(str::to_owned)),
            "--no-baseline" => opts.baseline = false,
            "--wrk" => opts.wrk = true,
            "--h2load" => opts.h2load = true,
            "--chart" => opts.chart = Some(value("--chart")?.into()),
            "--smoke" => {
                opts.smoke = true;
                opts.duration = Duration::from_millis(200);
                opts.warmup = Duration::from_millis(50);
                opts.connections = 4;
            }
            "--list" => {
                for s in scenarios() {
                    println!("{:<24} {}", s.name, s.description);
                }
                return Ok(None);
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let known: Vec<&str> = scenarios().iter().map(|s| s.name).collect();
    for name in &opts.only {
        if !known.contains(&name.as_str()) {
            return Err(format!("unknown scenario {name:?}; --list shows them"));
        }
    }
    let tools: &[(&str, bool, &str)] = &[
        (
            "wrk",
            opts.wrk,
            "--wrk needs `wrk` (Debian: apt-get install wrk)",
        ),
        (
            "h2load",
            opts.h2load,
            "--h2load needs `h2load` (Debian: apt-get install nghttp2-client)",
        ),
        (
            "taskset",
            opts.wrk || opts.h2load,
            "--wrk and --h2load need `taskset` (Debian: apt-get install util-linux)",
        ),
    ];
    for (tool, needed, hint) in tools {
        let found = || {
            std::process::Command::new(tool)
                .arg("--version")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok()
        };
        if *needed && !found() {
            return Err((*hint).to_owned());
        }
    }
    Ok(Some(opts))
}

/// A measurement that takes in other runs of the same scenario (`--rounds`).
trait Absorb {
    fn absorb(&mut self, other: Self);
}

/// Adds `run` to what earlier rounds measured of the scenario `same` finds, or lists it under
/// `key` if it is the first.
fn add_run<K, T: Absorb>(runs: &mut Vec<(K, T)>, same: impl Fn(&K) -> bool, key: K, run: T) {
    match runs.iter_mut().find(|(k, _)| same(k)) {
        Some((_, seen)) => seen.absorb(run),
        None => runs.push((key, run)),
    }
}

/// What `wrk` measured of one scenario, with the server's CPU time over its run.
struct WrkMeasurement {
    requests: u64,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    server_cpu: Duration,
    /// Responses wrk counted as "Non-2xx or 3xx".
    bad_status: u64,
    /// The runs these figures cover (`--rounds`).
    runs: u32,
}

impl WrkMeasurement {
    fn cpu_per_request_us(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }
}

impl Absorb for WrkMeasurement {
    /// Adds other runs of the same scenario. Every run lasts the same whole seconds, so
    /// requests/s is the mean of the runs'. wrk reports percentiles, not the latencies they come
    /// from: p50 and p99 are the means of the runs' own, not percentiles of all the requests.
    fn absorb(&mut self, other: Self) {
        let (mine, theirs) = (f64::from(self.runs), f64::from(other.runs));
        let mean = |a: f64, b: f64| (a * mine + b * theirs) / (mine + theirs);
        self.rps = mean(self.rps, other.rps);
        self.p50_us = mean(self.p50_us, other.p50_us);
        self.p99_us = mean(self.p99_us, other.p99_us);
        self.requests += other.requests;
        self.server_cpu += other.server_cpu;
        self.bad_status += other.bad_status;
        self.runs += other.runs;
    }
}

/// Runs an external load generator pinned to `core` against a server whose thread's CPU clock
/// is `cpu_path`: the tool's standard output, and the server's CPU time over the tool's run.
fn run_tool(
    tool: &str,
    args: &[String],
    spec: &tower_edge_benches::RequestSpec,
    addr: SocketAddr,
    core: Option<core_affinity::CoreId>,
    cpu_path: &std::path::Path,
) -> Result<(String, Duration), String> {
    let mut command = std::process::Command::new("taskset");
    let cpu_list = core.map_or_else(|| "0-1023".to_owned(), |c| c.id.to_string());
    command.args(["-c", &cpu_list, tool]).args(args);
    for (name, value) in &spec.headers {
        command.args(["-H", &format!("{name}: {value}")]);
    }
    command.arg(format!("http://{addr}{}", spec.path));
    let cpu_start = read_cpu(cpu_path);
    let output = command.output().map_err(|e| format!("{tool}: {e}"))?;
    let server_cpu = read_cpu(cpu_path).saturating_sub(cpu_start);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "{tool} failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok((text, server_cpu))
}

/// The whole seconds a tool runs for (wrk's and h2load's unit).
fn tool_seconds(opts: &Options) -> u64 {
    opts.duration.as_secs_f64().ceil().max(1.0) as u64
}

/// Drives the server at `addr` with `wrk` pinned to `core`.
fn run_wrk(
    addr: SocketAddr,
    spec: &tower_edge_benches::RequestSpec,
    opts: &Options,
    core: Option<core_affinity::CoreId>,
    cpu_path: &std::path::Path,
) -> Result<WrkMeasurement, String> {
    let args = [
        "-t1".to_owned(),
        "--latency".to_owned(),
        format!("-c{}", opts.connections),
        format!("-d{}s", tool_seconds(opts)),
        "-H".to_owned(),
        "Host: bench".to_owned(),
    ];
    let (text, server_cpu) = run_tool("wrk", &args, spec, addr, core, cpu_path)?;
    parse_wrk(&text, server_cpu).ok_or_else(|| format!("unreadable wrk output:\n{text}"))
}

/// Reads wrk's report: the request count, requests/s, the 50% and 99% latencies and the count
/// of responses outside 2xx and 3xx.
fn parse_wrk(text: &str, server_cpu: Duration) -> Option<WrkMeasurement> {
    let micros = |value: &str| -> Option<f64> {
        let (number, factor) = if let Some(n) = value.strip_suffix("us") {
            (n, 1.0)
        } else if let Some(n) = value.strip_suffix("ms") {
            (n, 1e3)
        } else if let Some(n) = value.strip_suffix('s') {
            (n, 1e6)
        } else {
            return None;
        };
        number.parse::<f64>().ok().map(|n| n * factor)
    };
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(prefix).map(str::trim))
    };
    let requests = text
        .lines()
        .find(|line| line.contains(" requests in "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(WrkMeasurement {
        requests,
        rps: field("Requests/sec:")?.parse().ok()?,
        p50_us: micros(field("50%")?)?,
        p99_us: micros(field("99%")?)?,
        server_cpu,
        bad_status: field("Non-2xx or 3xx responses:").map_or(Some(0), |n| n.parse().ok())?,
        runs: 1,
    })
}

/// The scenarios `--h2load` drives over HTTP/2: the hits, and what they are compared with.
const H2_SCENARIOS: [&str; 8] = [
    "bare",
    "bare-hit-fields",
    "cache-hit",
    "preset-hit",
    "preset-br-hit",
    "preset-304",
    "etag-200",
    "etag-304",
];

/// What h2load measured of one scenario over h2c, with the server's CPU time over its run.
struct H2Measurement {
    requests: u64,
    rps: f64,
    mean_us: f64,
    server_cpu: Duration,
    /// Requests that failed, errored, or were answered 4xx or 5xx.
    bad: u64,
    /// The runs these figures cover (`--rounds`).
    runs: u32,
}

impl H2Measurement {
    fn cpu_per_request_us(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }
}

impl Absorb for H2Measurement {
    /// Adds other runs of the same scenario: requests/s averaged over runs of equal length,
    /// the mean time per request over all their requests.
    fn absorb(&mut self, other: Self) {
        let (mine, theirs) = (f64::from(self.runs), f64::from(other.runs));
        self.rps = (self.rps * mine + other.rps * theirs) / (mine + theirs);
        let total = (self.requests + other.requests).max(1) as f64;
        self.mean_us =
            (self.mean_us * self.requests as f64 + other.mean_us * other.requests as f64) / total;
        self.requests += other.requests;
        self.server_cpu += other.server_cpu;
        self.bad += other.bad;
        self.runs += other.runs;
    }
}

/// Drives the server at `addr` over h2c with `h2load` pinned to `core`, one stream per
/// connection (as HTTP/1.1 keeps one request in flight per connection). The server is warm
/// from the built-in run, so all of it is measured: the request count and the CPU time cover
/// the same span.
fn run_h2load(
    addr: SocketAddr,
    spec: &tower_edge_benches::RequestSpec,
    opts: &Options,
    core: Option<core_affinity::CoreId>,
    cpu_path: &std::path::Path,
) -> Result<H2Measurement, String> {
    let args = [
        "-t1".to_owned(),
        "-m1".to_owned(),
        format!("-c{}", opts.connections),
        format!("-D{}", tool_seconds(opts)),
        // The authority the other clients send as `Host`, so the cache scenarios hit the
        // entries the built-in run stored (their keys name it).
        "-H".to_owned(),
        ":authority: bench".to_owned(),
    ];
    let (text, server_cpu) = run_tool("h2load", &args, spec, addr, core, cpu_path)?;
    parse_h2load(&text, server_cpu).ok_or_else(|| format!("unreadable h2load output:\n{text}"))
}

/// Reads h2load's report: requests done and per second, the mean time for a request, and the
/// requests that did not get a 2xx or 3xx.
fn parse_h2load(text: &str, server_cpu: Duration) -> Option<H2Measurement> {
    let line = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(prefix).map(str::trim))
    };
    // "N total, N started, N done, N succeeded, N failed, N errored, N timeout"
    let count = |fields: &str, what: &str| -> Option<u64> {
        fields
            .split(',')
            .map(str::trim)
            .find_map(|field| field.strip_suffix(what)?.trim().parse().ok())
    };
    let requests = line("requests:")?;
    let statuses = line("status codes:")?;
    let rps = line("finished in")?
        .split(',')
        .nth(1)?
        .trim()
        .strip_suffix("req/s")?
        .trim()
        .parse()
        .ok()?;
    // "time for request:  min  max  mean  sd  +/- sd", each with its unit.
    let mean = line("time for request:")?.split_whitespace().nth(2)?;
    let (number, factor) = if let Some(n) = mean.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = mean.strip_suffix("ms") {
        (n, 1e3)
    } else {
        (mean.strip_suffix('s')?, 1e6)
    };
    Some(H2Measurement {
        requests: count(requests, "done")?,
        rps,
        mean_us: number.parse::<f64>().ok()? * factor,
        server_cpu,
        // `failed` already counts the errored requests and the 4xx and 5xx answers.
        bad: count(requests, "failed")?.max(count(statuses, "4xx")? + count(statuses, "5xx")?),
        runs: 1,
    })
}

struct Measurement {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    server_cpu: Duration,
    latencies_us: Vec<u32>,
}

impl Measurement {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn cpu_per_request_us(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }

    fn percentile(&self, p: f64) -> u32 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let idx = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[idx]
    }
}

impl Absorb for Measurement {
    /// Adds other runs of the same scenario: their requests, time, CPU and latencies.
    fn absorb(&mut self, other: Self) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.server_cpu += other.server_cpu;
        self.latencies_us.extend(other.latencies_us);
        self.latencies_us.sort_unstable();
    }
}

fn main() -> ExitCode {
    let code = run();
    // The file scenarios' directory (made as soon as any scenario list is): a static, never
    // dropped, so removed here.
    tower_edge_benches::fs::remove_files();
    code
}

fn run() -> ExitCode {
    let opts = match parse_options() {
        Ok(Some(opts)) => opts,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprint!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (server_core, client_core) = match cores.as_slice() {
        [a, b, ..] => (Some(*a), Some(*b)),
        _ => {
            eprintln!("warning: fewer than 2 cores visible; server and client are not pinned");
            (None, None)
        }
    };
    if !opts.smoke && cfg!(debug_assertions) {
        eprintln!("warning: a debug build; figures are meaningless (use cargo run --release)");
    }

    let all = scenarios();
    let chosen = |name: &str| opts.only.is_empty() || opts.only.iter().any(|n| n == name);
    // A scenario's own baseline runs with it.
    let selected: Vec<Scenario> = all
        .iter()
        .filter(|s| {
            chosen(s.name)
                || (opts.baseline && s.name == "bare")
                || (opts.baseline
                    && all
                        .iter()
                        .any(|o| chosen(o.name) && paired_baseline(o.name) == Some(s.name)))
        })
        .cloned()
        .collect();
    let _redis = if selected.iter().any(|s| needs_redis(s.name)) {
        match tower_edge_benches::redis::BenchRedis::start() {
            Ok(redis) => {
                tower_edge_benches::redis::set_url(redis.url());
                Some(redis)
            }
            Err(e) => {
                eprintln!("warning: {e}; skipping the redis-* and tiered-* scenarios");
                None
            }
        }
    } else {
        None
    };
    let has_nginx = nginx::installed();
    if !has_nginx && selected.iter().any(|s| nginx::is_nginx(s.name)) {
        eprintln!(
            "warning: nginx is not installed (Debian: apt-get install nginx-light); skipping the nginx-* scenarios"
        );
    }
    let mut results: Vec<(Scenario, Measurement)> = Vec::new();
    let mut by_wrk: Vec<(&'static str, WrkMeasurement)> = Vec::new();
    let mut by_h2: Vec<(&'static str, H2Measurement)> = Vec::new();
    let mut failed = false;
    for round in 1..=opts.rounds {
        if opts.rounds > 1 {
            eprintln!("round {round} of {}", opts.rounds);
        }
        for scenario in &selected {
            if needs_redis(scenario.name) && _redis.is_none() {
                continue;
            }
            if nginx::is_nginx(scenario.name) && !has_nginx {
                continue;
            }
            match run_scenario(scenario, &opts, server_core, client_core) {
                Ok(Runs {
                    built_in: m,
                    wrk,
                    h2,
                }) => {
                    if let Some(h2) = h2 {
                        if h2.bad > 0 || h2.requests == 0 {
                            eprintln!(
                                "{}: h2load saw {} requests, {} failed or outside 2xx and 3xx",
                                scenario.name, h2.requests, h2.bad
                            );
                            failed = true;
                        }
                        add_run(&mut by_h2, |n| *n == scenario.name, scenario.name, h2);
                    }
                    if m.errors > 0 {
                        eprintln!("{}: {} wrong responses", scenario.name, m.errors);
                        failed = true;
                    }
                    if m.requests == 0 {
                        eprintln!("{}: no request completed", scenario.name);
                        failed = true;
                    }
                    if let Some(wrk) = wrk {
                        if wrk.bad_status > 0 || wrk.requests == 0 {
                            eprintln!(
                                "{}: wrk saw {} requests, {} outside 2xx and 3xx",
                                scenario.name, wrk.requests, wrk.bad_status
                            );
                            failed = true;
                        }
                        add_run(&mut by_wrk, |n| *n == scenario.name, scenario.name, wrk);
                    }
                    add_run(
                        &mut results,
                        |s| s.name == scenario.name,
                        scenario.clone(),
                        m,
                    );
                }
                Err(e) => {
                    eprintln!("{}: {e}", scenario.name);
                    failed = true;
                }
            }
        }
    }

    print_table(&results, &opts);
    if !by_wrk.is_empty() {
        print_wrk_table(&results, &by_wrk, &opts);
    }
    print_nginx_table(&results, &by_wrk);
    if !by_h2.is_empty() {
        print_h2_table(&results, &by_h2, &opts);
    }
    if let Some(path) = &opts.chart {
        let rows: Vec<chart::Row> = results
            .iter()
            .map(|(s, m)| chart::Row {
                name: s.name.to_owned(),
                rps: m.rps(),
                cpu_us: m.cpu_per_request_us(),
            })
            .collect();
        let title = format!(
            "tower-edge load bench: {} connections, {:.0} s per scenario{}, server and client on separate cores",
            opts.connections,
            opts.duration.as_secs_f64(),
            if opts.rounds > 1 {
                format!(" x {} rounds", opts.rounds)
            } else {
                String::new()
            }
        );
        match std::fs::write(path, chart::svg(&title, &rows)) {
            Ok(()) => eprintln!("chart written to {}", path.display()),
            Err(e) => {
                eprintln!("cannot write the chart to {}: {e}", path.display());
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// How many runs each figure covers, when more than one.
fn rounds_note(opts: &Options) -> String {
    if opts.rounds > 1 {
        format!(" in each of {} rounds taken in turn", opts.rounds)
    } else {
        String::new()
    }
}

fn print_table(results: &[(Scenario, Measurement)], opts: &Options) {
    let base = results
        .iter()
        .find(|(s, _)| s.name == "bare")
        .map(|(_, m)| m);
    println!(
        "\n{} connections, {:.1} s measured per scenario{}, server and client on separate cores\n",
        opts.connections,
        opts.duration.as_secs_f64(),
        rounds_note(opts)
    );
    println!(
        "| scenario | req/s | p50 µs | p99 µs | server CPU µs/req | req/s vs bare | CPU/req vs bare | own baseline | req/s vs it | CPU/req vs it |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|");
    let ratios = |m: &Measurement, b: &Measurement| {
        (
            m.rps() / b.rps(),
            b.cpu_per_request_us() / m.cpu_per_request_us(),
        )
    };
    for (s, m) in results {
        let (rps_ratio, cpu_ratio) = base.map_or((f64::NAN, f64::NAN), |b| ratios(m, b));
        let pair = paired_baseline(s.name).and_then(|name| {
            results
                .iter()
                .find(|(o, _)| o.name == name)
                .map(|(o, b)| (o.name, ratios(m, b)))
        });
        let pair = match pair {
            Some((name, (r, c))) => format!("{name} | {r:.2}x | {c:.2}x"),
            None => "- | - | -".to_owned(),
        };
        println!(
            "| {} | {:.0} | {} | {} | {:.2} | {:.2}x | {:.2}x | {pair} |",
            s.name,
            m.rps(),
            m.percentile(0.50),
            m.percentile(0.99),
            m.cpu_per_request_us(),
            rps_ratio,
            cpu_ratio,
        );
    }
    println!(
        "\nCPU/req vs bare is the bare handler's server CPU per request divided by the \
         scenario's: 1.00x costs the same, 0.50x twice as much."
    );
}

/// wrk's figures for the same servers, with ratios to the bare handler as wrk measured it, and
/// the built-in generator's requests/s against wrk's (how far its figures can be trusted).
fn print_wrk_table(
    results: &[(Scenario, Measurement)],
    by_wrk: &[(&'static str, WrkMeasurement)],
    opts: &Options,
) {
    let bare = by_wrk
        .iter()
        .find(|(name, _)| *name == "bare")
        .map(|(_, w)| w);
    println!(
        "\nThe same servers driven by wrk (1 thread, {} connections, {} s{}, pinned with taskset):\n",
        opts.connections,
        tool_seconds(opts),
        rounds_note(opts)
    );
    println!(
        "| scenario | wrk req/s | p50 µs | p99 µs | server CPU µs/req | req/s vs bare | CPU/req vs bare | built-in req/s / wrk's |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, w) in by_wrk {
        let (rps_ratio, cpu_ratio) = bare.map_or((f64::NAN, f64::NAN), |b| {
            (
                w.rps / b.rps,
                b.cpu_per_request_us() / w.cpu_per_request_us(),
            )
        });
        let agreement = results
            .iter()
            .find(|(s, _)| s.name == *name)
            .map_or(f64::NAN, |(_, m)| m.rps() / w.rps);
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.2} | {rps_ratio:.2}x | {cpu_ratio:.2}x | {agreement:.2} |",
            w.rps,
            w.p50_us,
            w.p99_us,
            w.cpu_per_request_us(),
        );
    }
}

/// The hit scenarios over h2c by h2load, with ratios to the bare handler over h2c, and their
/// server CPU per request against the same server's over HTTP/1.1 (the built-in client's run).
fn print_h2_table(
    results: &[(Scenario, Measurement)],
    by_h2: &[(&'static str, H2Measurement)],
    opts: &Options,
) {
    let bare = by_h2
        .iter()
        .find(|(name, _)| *name == "bare")
        .map(|(_, m)| m);
    println!(
        "\nThe hit scenarios over HTTP/2 without TLS (h2c), driven by h2load (1 thread, {} connections, one stream each, {} s{}, pinned with taskset):\n",
        opts.connections,
        tool_seconds(opts),
        rounds_note(opts)
    );
    println!(
        "| scenario | h2load req/s | mean µs | server CPU µs/req | req/s vs bare | CPU/req vs bare | HTTP/1.1 CPU/req ÷ h2c's |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, h2) in by_h2 {
        let (rps_ratio, cpu_ratio) = bare.map_or((f64::NAN, f64::NAN), |b| {
            (
                h2.rps / b.rps,
                b.cpu_per_request_us() / h2.cpu_per_request_us(),
            )
        });
        let versus_h1 = results
            .iter()
            .find(|(s, _)| s.name == *name)
            .map_or(f64::NAN, |(_, m)| {
                m.cpu_per_request_us() / h2.cpu_per_request_us()
            });
        println!(
            "| {name} | {:.0} | {:.0} | {:.2} | {rps_ratio:.2}x | {cpu_ratio:.2}x | {versus_h1:.2} |",
            h2.rps,
            h2.mean_us,
            h2.cpu_per_request_us(),
        );
    }
}

/// tower-edge's file scenarios against nginx serving the same files, by both clients.
fn print_nginx_table(
    results: &[(Scenario, Measurement)],
    by_wrk: &[(&'static str, WrkMeasurement)],
) {
    let built_in = |name: &str| results.iter().find(|(s, _)| s.name == name).map(|(_, m)| m);
    let wrk = |name: &str| by_wrk.iter().find(|(n, _)| *n == name).map(|(_, w)| w);
    let mut pairs: Vec<(&str, &str)> = results
        .iter()
        .filter_map(|(s, _)| Some((s.name, nginx::twin(s.name)?)))
        .filter(|(_, twin)| built_in(twin).is_some())
        .collect();
    // The bare handler sends 10 KiB from memory with no file at all: what any handler under
    // `axum::serve` reaches against nginx, the ceiling for `ServeDir` on the 10 KiB file.
    // And nginx itself without `sendfile`, copying the file through memory as hyper does.
    if built_in("nginx-10k").is_some() {
        if built_in(nginx::COPYING).is_some() {
            pairs.insert(0, (nginx::COPYING, "nginx-10k"));
        }
        if built_in("bare").is_some() {
            pairs.insert(0, ("bare", "nginx-10k"));
        }
    }
    if pairs.is_empty() {
        return;
    }
    println!(
        "\ntower-edge ServeDir against nginx on the same files (ratios above 1.00x favour tower-edge; \
         `bare`, the bare axum handler's 10 KiB from memory, is the most any axum handler reaches; \
         `{}` is nginx copying the file through memory, as hyper writes every body, against nginx \
         with `sendfile`):\n",
        nginx::COPYING
    );
    println!(
        "| scenario | nginx twin | req/s vs nginx | CPU/req vs nginx | wrk: req/s vs nginx | wrk: CPU/req vs nginx |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for (name, twin) in pairs {
        let (Some(m), Some(n)) = (built_in(name), built_in(twin)) else {
            continue;
        };
        let by_wrk = match (wrk(name), wrk(twin)) {
            (Some(w), Some(v)) => format!(
                "{:.2}x | {:.2}x",
                w.rps / v.rps,
                v.cpu_per_request_us() / w.cpu_per_request_us()
            ),
            _ => "- | -".to_owned(),
        };
        println!(
            "| {name} | {twin} | {:.2}x | {:.2}x | {by_wrk} |",
            m.rps() / n.rps(),
            n.cpu_per_request_us() / m.cpu_per_request_us()
        );
    }
}

/// The CPU time the calling thread has used, from the kernel's scheduler statistics.
fn thread_cpu_path() -> std::io::Result<std::path::PathBuf> {
    // "/proc/thread-self" links to "<pid>/task/<tid>"; keep the path to read it from elsewhere.
    let link = std::fs::read_link("/proc/thread-self")?;
    Ok(std::path::Path::new("/proc").join(link).join("schedstat"))
}

fn read_cpu(path: &std::path::Path) -> Duration {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// What each client measured of one scenario.
struct Runs {
    built_in: Measurement,
    wrk: Option<WrkMeasurement>,
    h2: Option<H2Measurement>,
}

fn run_scenario(
    scenario: &Scenario,
    opts: &Options,
    server_core: Option<core_affinity::CoreId>,
    client_core: Option<core_affinity::CoreId>,
) -> Result<Runs, String> {
    if nginx::is_nginx(scenario.name) {
        return run_against_nginx(scenario, opts, server_core, client_core);
    }
    let (ready_tx, ready_rx) = mpsc::channel::<std::io::Result<(SocketAddr, std::path::PathBuf)>>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let router = (scenario.app)();
    let observed = tower_edge_benches::observed(scenario.name);
    // Named threads, so a profiler can tell the server's samples from the client's.
    let server = std::thread::Builder::new()
        .name("lb-server".into())
        .spawn(move || {
            if let Some(core) = server_core {
                core_affinity::set_for_current(core);
            }
            // A recorder for this thread only (the server's runtime runs on it alone): the
            // other scenarios run with none, as the facade does without one.
            let recorder = observed.then(|| {
                metrics_exporter_prometheus::PrometheusBuilder::new()
                    .set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Prefix("tower_edge_".to_owned()),
                        &tower_edge::observe::DURATION_BUCKETS,
                    )
                    .expect("valid buckets")
                    .build_recorder()
            });
            let _recording = recorder
                .as_ref()
                .map(|r| metrics::set_default_local_recorder(r));
            // The exporter's upkeep (folding the histograms' samples in), which an installed
            // recorder runs every 5 s on a thread of its own; here every second on the server's
            // thread, its cost charged to the server. Without it the samples pile up unbounded.
            let upkeep = recorder.as_ref().map(|r| r.handle());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let addr = listener.local_addr().expect("local address");
                let cpu_path = match thread_cpu_path() {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok((addr, cpu_path)));
                if let Some(handle) = upkeep {
                    tokio::spawn(async move {
                        let mut every = tokio::time::interval(Duration::from_secs(1));
                        loop {
                            every.tick().await;
                            handle.run_upkeep();
                        }
                    });
                }
                // TCP_NODELAY, as the example server sets it and nginx does (`tcp_nodelay on`):
                // without it, a server that writes a response's head and body apart waits out
                // the client's delayed ACK (about 40 ms) on kept-alive connections.
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        })
        .map_err(|e| format!("server thread: {e}"))?;
    let (addr, cpu_path) = ready_rx
        .recv()
        .map_err(|_| "server thread died".to_owned())?
        .map_err(|e| format!("server: {e}"))?;
    let result = built_in_client(scenario, opts, addr, client_core, cpu_path.clone());
    // The same server, warmed by the built-in run, driven by wrk.
    let wrk = match (&result, opts.wrk) {
        (Ok(_), true) => Some(run_wrk(
            addr,
            &scenario.request,
            opts,
            client_core,
            &cpu_path,
        )),
        _ => None,
    };
    let h2 = match (
        &result,
        opts.h2load && H2_SCENARIOS.contains(&scenario.name),
    ) {
        (Ok(_), true) => Some(run_h2load(
            addr,
            &scenario.request,
            opts,
            client_core,
            &cpu_path,
        )),
        _ => None,
    };
    let _ = stop_tx.send(());
    server
        .join()
        .map_err(|_| "server thread panicked".to_owned())?;
    Ok(Runs {
        built_in: result?,
        wrk: wrk.transpose()?,
        h2: h2.transpose()?,
    })
}

/// Runs the built-in load generator against `addr` on its own thread, pinned to `core`, and
/// measures the server's CPU time from `cpu_path`.
fn built_in_client(
    scenario: &Scenario,
    opts: &Options,
    addr: SocketAddr,
    core: Option<core_affinity::CoreId>,
    cpu_path: std::path::PathBuf,
) -> Result<Measurement, String> {
    let client_opts = (opts.connections, opts.warmup, opts.duration);
    let (request, expect) = (scenario.request.clone(), scenario.expect);
    std::thread::Builder::new()
        .name("lb-client".into())
        .spawn(move || {
            if let Some(core) = core {
                core_affinity::set_for_current(core);
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(drive(addr, client_opts, request, expect, cpu_path))
        })
        .map_err(|e| format!("client thread: {e}"))?
        .join()
        .map_err(|_| "client thread panicked".to_owned())?
}

/// A file scenario served by nginx (pinned to the server's core) instead of a router.
fn run_against_nginx(
    scenario: &Scenario,
    opts: &Options,
    server_core: Option<core_affinity::CoreId>,
    client_core: Option<core_affinity::CoreId>,
) -> Result<Runs, String> {
    let sendfile = scenario.name != nginx::COPYING;
    let server = nginx::Nginx::start(server_core.map(|c| c.id), sendfile)?;
    let (addr, cpu_path) = (server.addr(), server.cpu_path());
    let measured = built_in_client(scenario, opts, addr, client_core, cpu_path.clone())?;
    let wrk = if opts.wrk {
        Some(run_wrk(
            addr,
            &scenario.request,
            opts,
            client_core,
            &cpu_path,
        )?)
    } else {
        None
    };
    drop(server);
    Ok(Runs {
        built_in: measured,
        wrk,
        h2: None,
    })
}

async fn drive(
    addr: SocketAddr,
    (connections, warmup, duration): (usize, Duration, Duration),
    request: tower_edge_benches::RequestSpec,
    expect: tower_edge_benches::Expect,
    cpu_path: std::path::PathBuf,
) -> Result<Measurement, String> {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let request = Arc::new(request);
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let measuring = measuring.clone();
        let stop = stop.clone();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            connection_loop(addr, &request, expect, &measuring, &stop).await
        }));
    }
    tokio::time::sleep(warmup).await;
    let cpu_start = read_cpu(&cpu_path);
    let start = Instant::now();
    measuring.store(true, Ordering::Release);
    tokio::time::sleep(duration).await;
    measuring.store(false, Ordering::Release);
    let elapsed = start.elapsed();
    let cpu_end = read_cpu(&cpu_path);
    stop.store(true, Ordering::Release);

    let mut m = Measurement {
        requests: 0,
        errors: 0,
        elapsed,
        server_cpu: cpu_end.saturating_sub(cpu_start),
        latencies_us: Vec::new(),
    };
    for task in tasks {
        let (requests, errors, latencies) =
            task.await.map_err(|e| format!("connection task: {e}"))??;
        m.requests += requests;
        m.errors += errors;
        m.latencies_us.extend(latencies);
    }
    m.latencies_us.sort_unstable();
    Ok(m)
}

type ConnResult = Result<(u64, u64, Vec<u32>), String>;

async fn connection_loop(
    addr: SocketAddr,
    spec: &tower_edge_benches::RequestSpec,
    expect: tower_edge_benches::Expect,
    measuring: &AtomicBool,
    stop: &AtomicBool,
) -> ConnResult {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let (mut requests, mut errors) = (0u64, 0u64);
    let mut latencies = Vec::with_capacity(1 << 16);
    while !stop.load(Ordering::Acquire) {
        let mut req = Request::builder()
            .method(spec.method.clone())
            .uri(spec.path)
            .header(http::header::HOST, "bench");
        for (name, value) in &spec.headers {
            req = req.header(*name, value.as_str());
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
        sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let started = Instant::now();
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = res.status();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        let took = started.elapsed();
        let ok = status == expect.status && body.len() == expect.body_len;
        if measuring.load(Ordering::Acquire) {
            requests += 1;
            latencies.push(took.as_micros().min(u128::from(u32::MAX)) as u32);
            if !ok {
                errors += 1;
            }
        } else if !ok && status != StatusCode::OK && errors == 0 && requests == 0 {
            // Count wrong answers during warm-up too: a smoke run is mostly warm-up.
            errors += 1;
        }
    }
    Ok((requests, errors, latencies))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_h2loads_report() {
        let report = "\
finished in 4.00s, 3982.95 req/s, 38.86MB/s
requests: 15932 total, 15932 started, 15930 done, 15928 succeeded, 2 failed, 0 errored, 0 timeout
status codes: 15920 2xx, 8 3xx, 1 4xx, 1 5xx
traffic: 1.95MB (2046192) total, 2.02KB (2070) headers (space savings 88.50%), 1.95MB (2040400) data
                     min         max         mean         sd        +/- sd
time for request:       89us      3.29ms       1.25ms       460us    95.00%
";
        let m = parse_h2load(report, Duration::from_secs(2)).expect("a readable report");
        assert_eq!(m.requests, 15930);
        assert!((m.rps - 3982.95).abs() < 1e-9);
        assert!((m.mean_us - 1250.0).abs() < 1e-9);
        assert_eq!(m.bad, 2);
        assert!(parse_h2load("finished in 4.00s", Duration::ZERO).is_none());
    }

    #[test]
    fn rounds_add_up_to_one_figure_per_scenario() {
        let wrk = |requests, rps, p50_us, cpu_ms| WrkMeasurement {
            requests,
            rps,
            p50_us,
            p99_us: p50_us * 4.0,
            server_cpu: Duration::from_millis(cpu_ms),
            bad_status: 0,
            runs: 1,
        };
        let mut w = wrk(400, 100.0, 200.0, 4);
        w.absorb(wrk(800, 200.0, 100.0, 4));
        w.absorb(wrk(600, 150.0, 150.0, 4));
        assert_eq!((w.requests, w.runs), (1800, 3));
        assert!((w.rps - 150.0).abs() < 1e-9);
        assert!((w.p50_us - 150.0).abs() < 1e-9);
        assert!((w.p99_us - 600.0).abs() < 1e-9);
        assert!((w.cpu_per_request_us() - 12_000.0 / 1800.0).abs() < 1e-9);
        // Runs already merged weigh as many runs as they cover.
        let mut one = wrk(300, 300.0, 300.0, 4);
        one.absorb(w);
        assert_eq!((one.requests, one.runs), (2100, 4));
        assert!((one.rps - 187.5).abs() < 1e-9);

        let h2 = |requests, rps, mean_us| H2Measurement {
            requests,
            rps,
            mean_us,
            server_cpu: Duration::from_millis(1),
            bad: 1,
            runs: 1,
        };
        let mut h = h2(100, 50.0, 10.0);
        h.absorb(h2(300, 150.0, 30.0));
        assert_eq!((h.requests, h.bad, h.runs), (400, 2, 2));
        assert!((h.rps - 100.0).abs() < 1e-9);
        assert!((h.mean_us - 25.0).abs() < 1e-9);

        let built_in = |requests, latencies: Vec<u32>| Measurement {
            requests,
            errors: 0,
            elapsed: Duration::from_secs(1),
            server_cpu: Duration::from_millis(1),
            latencies_us: latencies,
        };
        let mut m = built_in(3, vec![10, 20, 30]);
        m.absorb(built_in(3, vec![1, 2, 3]));
        assert_eq!(m.requests, 6);
        assert!((m.rps() - 3.0).abs() < 1e-9);
        assert_eq!(m.latencies_us, [1, 2, 3, 10, 20, 30]);
        assert_eq!(m.percentile(0.0), 1);
        assert_eq!(m.percentile(1.0), 30);
    }

    #[test]
    fn reads_wrks_report() {
        let report = "\
  Latency Distribution
     50%  210.00us
     99%    1.20ms
  524288 requests in 4.00s, 5.00GB read
  Non-2xx or 3xx responses: 3
Requests/sec: 131072.00
";
        let m = parse_wrk(report, Duration::from_secs(1)).expect("a readable report");
        assert_eq!(m.requests, 524_288);
        assert!((m.p50_us - 210.0).abs() < 1e-9);
        assert!((m.p99_us - 1200.0).abs() < 1e-9);
        assert_eq!(m.bad_status, 3);
    }
}
