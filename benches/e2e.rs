//! End to end through codeQ: the codeQ emulator (in this process, real gRPC on loopback), a
//! real redis-server and the `serve` binary (release) as a child process, running a trivial
//! function. Two figures:
//!
//! - `e2e_latency_ms_p50/p99`: enqueue → task COMPLETED, one task at a time (moderate load:
//!   nothing queues), as the emulator sees it;
//! - `e2e_throughput_per_s`: N tasks enqueued at once, time until the last one is COMPLETED.
//!
//! Per activation it also reports what the figures cost, so that they can be compared across
//! machines: store round trips (redis's read events, one activation at a time = sequential,
//! and under load = shared), store commands (`INFO commandstats`), codeQ messages (counted by
//! the emulator) and the daemon's own CPU time (`/proc/PID/stat`).
//!
//! Merges its figures into `target/bench/results.json`. Needs `redis-server` (skipped
//! otherwise). Everything shares the machine's cores: the daemon, its children, redis, and the
//! emulator.

#[path = "../tests/support/mod.rs"]
mod support;

use codeq_emulator::{Emulator, EmulatorConfig, EnqueueOptions, TaskStatus};
use sandbox_proto::bundle;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::redis_server::RedisServer;

const T: &str = "t_bench1";

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn payload(i: usize) -> Vec<u8> {
    let aid = uuid::Uuid::new_v4();
    format!(
        r#"{{"schema":"cs.envelope.v1","id":"msg_{i}","ts_ms":{},"tenant":"{T}","type":"InvocationRequest","body":{{"activation_id":"{aid}","request_id":"req-{i:08}","tenant":"{T}","namespace":"bench","ref":{{"function":"trivial","alias":"prod"}},"trigger":{{"type":"api","source":{{}}}},"principal":{{"sub":"bench","roles":[]}},"deadline_ms":{},"event":{{"n":{i}}}}}}}"#,
        now_ms(),
        now_ms() + 600_000
    )
    .into_bytes()
}

fn ready(http: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(http) else {
        return false;
    };
    let _ = write!(
        s,
        "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

/// What redis counted so far: calls per command name (`INFO commandstats`, commands run inside
/// scripts included), and `total_reads_processed` (`INFO stats`): read events on client
/// sockets, i.e. the batches of commands that arrived — one per store round trip, however many
/// commands it carried (pipelined or multiplexed commands sent together arrive in one read).
struct StoreStats {
    calls: BTreeMap<String, u64>,
    reads: u64,
}

/// One `INFO stats commandstats` (one read event of its own, which the caller subtracts).
fn store_stats(conn: &mut redis::Connection) -> StoreStats {
    let text: String = redis::cmd("INFO")
        .arg("stats")
        .arg("commandstats")
        .query(conn)
        .unwrap_or_default();
    let calls = text
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|f| f.strip_prefix("calls="))?;
            Some((name.to_string(), calls.parse().ok()?))
        })
        .collect();
    let reads = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("total_reads_processed:")?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    StoreStats { calls, reads }
}

/// utime + stime of `pid`, in clock ticks (fields 14 and 15 of /proc/PID/stat).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn main() {
    let n: usize = std::env::var("CS_BENCH_E2E_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let serial: usize = 300;
    let Some(redis) = RedisServer::start() else {
        println!("e2e bench skipped: redis-server is not installed");
        return;
    };
    {
        let mut files = BTreeMap::new();
        files.insert(
            "function.js".to_string(),
            b"export default (e) => ({ statusCode: 200, body: 'ok' });".to_vec(),
        );
        files.insert(
            "manifest.json".to_string(),
            br#"{"schema":"cs.function.script.v1","runtime":"cs-js","entry":"function.js","limits":{"timeoutMs":10000,"memoryMb":64,"maxConcurrency":100}}"#.to_vec(),
        );
        let tar = bundle::pack(&files).expect("pack");
        let sha = bundle::sha256_hex(&tar);
        let mut raw = redis.raw();
        let p = format!("cs:fn:{T}:bench:trivial");
        for (k, v) in [
            (format!("{p}:ver:1:bundle"), tar),
            (
                format!("{p}:ver:1:meta"),
                format!(r#"{{"version":1,"sha256":"{sha}","config":{{}},"published_at_ms":1}}"#)
                    .into_bytes(),
            ),
            (
                format!("{p}:alias:prod"),
                br#"{"alias":"prod","version":1,"updated_at_ms":1}"#.to_vec(),
            ),
        ] {
            redis::cmd("SET")
                .arg(k)
                .arg(v)
                .query::<()>(&mut raw)
                .expect("set");
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let emu = rt
        .block_on(Emulator::start(EmulatorConfig::default()))
        .expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let http = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").to_string()
    };
    let cfg = format!(
        "plugins:\n  persistence:\n    kvrocks:\n      addr: \"{}\"\n  messaging:\n    codeq:\n      producer_token: producer-token\n      worker_token: worker-token\n      worker_stream_addr: \"{}\"\n      producer_stream_addr: \"{}\"\ncs_invoker_pool:\n  http:\n    addr: \"{http}\"\n  workers:\n    threads: 2\n    max_inflight: 64\n  pool:\n    prewarm: 2\n    max_children: 8\n",
        redis.addr(),
        emu.worker_addr(),
        emu.producer_addr()
    );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, cfg).expect("config");
    // CS_BENCH_SERVE_BIN: another build of the daemon (a before/after comparison on one bench).
    let bin = std::env::var_os("CS_BENCH_SERVE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cs-invoker-pool")));
    let mut child = Command::new(&bin)
        .args(["serve", "--config"])
        .arg(&path)
        .env("CS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("serve");
    let t0 = Instant::now();
    while !ready(&http) {
        assert!(t0.elapsed() < Duration::from_secs(30), "serve not ready");
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut stats_conn = redis.raw();
    let serve_pid = child.id();
    let (lat, serial_trips, serial_msgs, throughput, before, after, codeq_msgs) =
        rt.block_on(async {
            // Warm-up, then one at a time. Store read events and codeQ messages are counted over the
            // serial part: with one activation in flight, they are its sequential round trips.
            let mut lat = Vec::new();
            let mut serial_before = None;
            for i in 0..serial + 20 {
                if i == 20 {
                    serial_before =
                        Some((store_stats(&mut stats_conn).reads, emu.messages_received()));
                }
                let t = Instant::now();
                let id = emu.enqueue("cs.invoke", payload(i), EnqueueOptions::default());
                emu.wait_for_status(&id, TaskStatus::Completed, Duration::from_secs(10))
                    .await
                    .expect("completed");
                if i >= 20 {
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            let (reads0, msgs0) = serial_before.unwrap_or_default();
            // Minus the read event of the INFO that took this figure.
            let serial_trips = store_stats(&mut stats_conn)
                .reads
                .saturating_sub(reads0 + 1) as f64
                / serial as f64;
            let serial_msgs = (emu.messages_received() - msgs0) as f64 / serial as f64;
            // Throughput: n at once. Store commands and read events (redis's INFO) and the daemon's
            // own CPU (/proc/PID/stat) are read before and after, for per-activation costs.
            let before = (store_stats(&mut stats_conn), cpu_ticks(serve_pid));
            let msgs_before = emu.messages_received();
            let ids: Vec<String> = (0..n)
                .map(|i| emu.enqueue("cs.invoke", payload(100_000 + i), EnqueueOptions::default()))
                .collect();
            let t = Instant::now();
            // Tasks complete roughly in FIFO order: walk a cursor instead of rescanning all of
            // them (the emulator's lookups clone the task, and the bench must not eat the CPU it
            // measures).
            let mut done = 0;
            while done < n {
                while done < n
                    && emu
                        .task(&ids[done])
                        .map(|v| v.status == TaskStatus::Completed)
                        .unwrap_or(false)
                {
                    done += 1;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(300),
                    "only {done} of {n} completed"
                );
                if done < n {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            let rate = n as f64 / t.elapsed().as_secs_f64();
            let after = (store_stats(&mut stats_conn), cpu_ticks(serve_pid));
            let msgs = (emu.messages_received() - msgs_before) as f64 / n as f64;
            (lat, serial_trips, serial_msgs, rate, before, after, msgs)
        });
    let mut lat = lat;
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();

    // Per activation: store commands by name, and the daemon's CPU (user + system).
    let mut per_cmd: Vec<(String, f64)> = after
        .0
        .calls
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (v - before.0.calls.get(k).copied().unwrap_or(0)) as f64 / n as f64,
            )
        })
        .filter(|(k, v)| *v > 0.0 && k != "info")
        .collect();
    per_cmd.sort_by(|a, b| b.1.total_cmp(&a.1));
    let store_cmds: f64 = per_cmd.iter().map(|(_, v)| v).sum();
    // Round trips the store served under load (shared by concurrent activations), minus the
    // INFO that took the figure.
    let load_trips = after.0.reads.saturating_sub(before.0.reads + 1) as f64 / n as f64;
    let clk_tck = {
        // SAFETY: sysconf has no preconditions.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            t as f64
        } else {
            100.0
        }
    };
    let cpu_us = match (before.1, after.1) {
        (Some(b), Some(a)) => Some((a - b) as f64 / clk_tck * 1e6 / n as f64),
        _ => None,
    };
    let p50 = percentile(&mut lat, 0.5);
    let p99 = percentile(&mut lat, 0.99);
    let out = serde_json::json!({
        "e2e_throughput_per_s": throughput,
        "e2e_latency_ms_p50": p50,
        "e2e_latency_ms_p99": p99,
        "e2e_tasks": n,
        "e2e_store_commands_per_activation": store_cmds,
        "e2e_store_commands_by_name_per_activation": per_cmd.iter().cloned().collect::<BTreeMap<_, _>>(),
        "e2e_supervisor_cpu_us_per_activation": cpu_us,
        "e2e_codeq_messages_in_per_activation": codeq_msgs,
        "e2e_codeq_messages_in_per_activation_serial": serial_msgs,
        "e2e_store_round_trips_sequential_per_activation": serial_trips,
        "e2e_store_round_trips_per_activation_under_load": load_trips,
    });
    let dir = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
        .join("bench");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("results.json");
    let mut all: serde_json::Value = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    if let (Some(all), Some(out)) = (all.as_object_mut(), out.as_object()) {
        for (k, v) in out {
            all.insert(k.clone(), v.clone());
        }
    }
    let _ = std::fs::write(
        &path,
        serde_json::to_string_pretty(&all).unwrap_or_default(),
    );
    println!();
    println!("{:<28} {:>10}  target", "metric", "value");
    println!(
        "{:<28} {:>10.0}  >= 15000 /s",
        "e2e_throughput_per_s", throughput
    );
    println!("{:<28} {:>10.2}  <= 0.5 ms", "e2e_latency_ms_p50", p50);
    println!("{:<28} {:>10.2}", "e2e_latency_ms_p99", p99);
    println!(
        "{:<28} {:>10.2}  (store read events per activation, one activation at a time)",
        "store_round_trips_sequential", serial_trips
    );
    println!(
        "{:<28} {:>10.2}  (store read events per activation, {n} at once: shared trips)",
        "store_round_trips_under_load", load_trips
    );
    println!(
        "{:<28} {:>10.2}  ({})",
        "store_commands_per_activation",
        store_cmds,
        per_cmd
            .iter()
            .map(|(k, v)| format!("{k} {v:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "{:<28} {:>10.2}  (messages the daemon sent to codeQ, {n} at once)",
        "codeq_messages_per_activation", codeq_msgs
    );
    println!(
        "{:<28} {:>10.2}  (the same, one activation at a time)",
        "codeq_messages_serial", serial_msgs
    );
    match cpu_us {
        Some(us) => println!(
            "{:<28} {:>10.0}  (the serve process's user+system CPU, children excluded)",
            "supervisor_cpu_us_per_activation", us
        ),
        None => println!("supervisor_cpu_us_per_activation: /proc not readable"),
    }
    println!("written to {}", path.display());
}
