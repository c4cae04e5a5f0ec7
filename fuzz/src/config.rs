//! The `serve` configuration reader (`cs_invoker_pool::config::Config::from_yaml_str`).
//!
//! The input is the YAML text, optionally followed by a NUL byte and NUL-separated values for
//! the environment overrides, in the order of [`ENV`] (YAML text cannot hold a NUL, so the split
//! loses nothing): the overrides go through the same validation as the file.
//!
//! The secret overrides (password, tokens) are given a marker prefix, and no text the reader
//! produces (summary, `Debug`, error) may show it: secrets never reach a log.

use cs_invoker_pool::config::{self, Config, ConfigError};

const ENV: [&str; 9] = [
    config::ENV_KVROCKS_PASSWORD,
    config::ENV_CODEQ_PRODUCER_TOKEN,
    config::ENV_CODEQ_WORKER_TOKEN,
    config::ENV_KVROCKS_ADDR,
    config::ENV_HTTP_ADDR,
    config::ENV_CODEQ_WORKER_ADDR,
    config::ENV_CODEQ_PRODUCER_ADDR,
    config::ENV_MAX_INFLIGHT,
    config::ENV_READY_EXPIRY_MS,
];
/// The first three of [`ENV`] are secrets.
const SECRETS: usize = 3;
const MARK: &str = "s3cr3t-";

pub fn check(data: &[u8]) {
    let mut parts = data.split(|&b| b == 0);
    let Some(Ok(text)) = parts.next().map(std::str::from_utf8) else {
        return;
    };
    let values: Vec<(&str, String)> = ENV
        .iter()
        .zip(parts)
        .enumerate()
        .map(|(i, (k, v))| {
            let v = String::from_utf8_lossy(v);
            let v = if i < SECRETS && !v.is_empty() {
                format!("{MARK}{v}")
            } else {
                v.into_owned()
            };
            (*k, v)
        })
        .collect();
    let env = |k: &str| {
        values
            .iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone())
    };
    let shown = match Config::from_yaml_str(text, &env) {
        Ok(cfg) => {
            let _ = cfg.store_config();
            let _ = cfg.http_config();
            let _ = cfg.sandbox_policy();
            let _ = cfg.output_limits();
            let summary = cfg.summary();
            assert!(!summary.is_empty());
            format!("{summary}\n{cfg:?}")
        }
        Err(e) => {
            if let ConfigError::Invalid { problems, .. } = &e {
                assert!(!problems.is_empty(), "Invalid with no problem");
            }
            let msg = e.to_string();
            assert!(!msg.is_empty());
            format!("{msg}\n{e:?}")
        }
    };
    // Only the secrets carry the marker, unless the input wrote it elsewhere too.
    let elsewhere = text.contains(MARK)
        || values[SECRETS.min(values.len())..]
            .iter()
            .any(|(_, v)| v.contains(MARK));
    if !elsewhere {
        assert!(!shown.contains(MARK), "a secret is shown: {shown}");
    }
}
