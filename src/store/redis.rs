//! [`RedisStore`]: the store over the Redis protocol (KVRocks in production, redis-server in
//! tests).
//!
//! One multiplexed connection is shared by every call. When it breaks (reset, EOF, a reply that
//! does not come within `response_timeout`) it is dropped and the next call opens a new one, with
//! at most one connection attempt in flight: callers that queued behind a failed attempt get that
//! failure instead of trying again, so an outage costs each call at most one `connect_timeout`
//! plus one `response_timeout`. There is no background reconnection loop and no retry inside a
//! call, except that an idempotent command that fails because an *old* connection turned out to
//! be dead (the server restarted while we were idle) is sent once more on a new connection.
//!
//! Commands used: GET, SET (EX), DEL, EXISTS, STRLEN, GETRANGE, ZADD, ZRANGE, EXPIRE, MULTI/EXEC,
//! EVALSHA/EVAL, PING — all supported by KVRocks. The scripts use only `redis.call` on those
//! commands and plain Lua (no cjson: KVRocks' Lua libraries are not redis's).

use super::keys;
use super::records::{
    chunk_logs, ActivationRecord, ActivationStatus, AliasRecord, VersionMeta, LOG_CHUNK_BYTES,
};
use super::{
    AliasSeen, Begin, Begun, RunningWrite, Store, StoreConfig, StoreError, Terminal, UserKv,
    MAX_BUNDLE_BYTES,
};
use crate::secret::Secret;
use ::redis::aio::MultiplexedConnection;
use ::redis::{
    AsyncConnectionConfig, ConnectionAddr, ErrorKind, IntoConnectionInfo, RedisConnectionInfo,
    RedisError, RedisResult, Script, Value,
};
use sandbox_proto::messages::InvocationResult;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// The running write: KEYS = [status, meta], ARGV = [meta json, ttl]. Returns 1 when written,
/// else the terminal status found.
const RUNNING_LUA: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= 'running' then
  return cur
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[1], 'running', 'EX', ARGV[2])
return 1
"#;

/// Steps 2, 3 and 6 at once: KEYS = [status, meta, alias (optional)], ARGV = [meta json, ttl,
/// write ("1"/"0"), the alias content last seen]. The running write is made when asked, the
/// status is absent or `running`, and the alias (when given) holds exactly ARGV[4]. Returns
/// {status found (0/1), status, alias found (0/1), alias, written (0/1)}.
const BEGIN_LUA: &str = r#"
local cur = redis.call('GET', KEYS[1])
local alias = false
if #KEYS > 2 then
  alias = redis.call('GET', KEYS[3])
end
local write = ARGV[3] == '1' and not (cur and cur ~= 'running')
if write and #KEYS > 2 then
  write = alias == ARGV[4]
end
if write then
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
  redis.call('SET', KEYS[1], 'running', 'EX', ARGV[2])
end
return {cur and 1 or 0, cur or '', alias and 1 or 0, alias or '', write and 1 or 0}
"#;

/// The terminal compare-and-set with the logs and the correlation key.
/// KEYS = [status, meta, log index, correlation, chunk 0, chunk 1, ...],
/// ARGV = [meta json, status, ttl, correlation json, correlation ttl, chunk 0 text, ...].
/// Wins (1) when the status is `running` or absent, or when exactly this write already won
/// (its logs and correlation key were written with it then); writes nothing when it loses (0).
const TERMINAL_LUA: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= 'running' then
  if cur == ARGV[2] and redis.call('GET', KEYS[2]) == ARGV[1] then
    return 1
  end
  return 0
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
redis.call('DEL', KEYS[3])
local chunks = #KEYS - 4
for i = 1, chunks do
  redis.call('SET', KEYS[4 + i], ARGV[5 + i], 'EX', ARGV[3])
  redis.call('ZADD', KEYS[3], i - 1, tostring(i - 1))
end
if chunks > 0 then
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
redis.call('SET', KEYS[4], ARGV[4], 'EX', ARGV[5])
return 1
"#;

/// The scripts, hashed once. `redis::Script` sends EVALSHA and falls back to EVAL (loading the
/// script) when the server answers NOSCRIPT: on first use and after a KVRocks restart.
static RUNNING_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RUNNING_LUA));
static TERMINAL_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(TERMINAL_LUA));
static BEGIN_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(BEGIN_LUA));

/// Runs `script` with `keys` and `args` on `conn`.
async fn eval(
    script: &Script,
    conn: &mut MultiplexedConnection,
    keys: &[&str],
    args: &[&[u8]],
) -> RedisResult<Value> {
    let mut invocation = script.prepare_invoke();
    for k in keys {
        invocation.key(*k);
    }
    for a in args {
        invocation.arg(*a);
    }
    invocation.invoke_async(conn).await
}

/// The store over one multiplexed Redis-protocol connection. Cheap to clone (shared state).
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: StoreConfig,
    client: ::redis::Client,
    conn_config: AsyncConnectionConfig,
    current: Mutex<Option<Current>>,
    /// Held while a connection attempt is in flight.
    connecting: tokio::sync::Mutex<()>,
    /// The last failed attempt: when it ended and why.
    last_failure: Mutex<Option<(Instant, String)>>,
    generation: AtomicU64,
}

#[derive(Clone)]
struct Current {
    generation: u64,
    conn: MultiplexedConnection,
}

/// Extra time given to the crate's own timeouts before ours fire.
const GRACE: Duration = Duration::from_millis(250);

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Builds the store; no I/O (the first call connects). Fails on a malformed `addr` or a zero
    /// TTL or timeout.
    pub fn new(config: StoreConfig) -> Result<Self, StoreError> {
        let (host, port) = parse_addr(&config.addr)?;
        if config.activation_ttl_seconds == 0 || config.correlation_ttl_seconds == 0 {
            return Err(StoreError::Invalid(
                "store TTLs must be at least 1 second".into(),
            ));
        }
        if config.connect_timeout.is_zero() || config.response_timeout.is_zero() {
            return Err(StoreError::Invalid(
                "store timeouts must not be zero".into(),
            ));
        }
        let mut redis_info = RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(password) = config
            .password
            .as_ref()
            .map(Secret::expose)
            .filter(|p| !p.is_empty())
        {
            redis_info = redis_info.set_password(password);
        }
        let info = ConnectionAddr::Tcp(host, port)
            .into_connection_info()
            .map_err(|e| StoreError::Invalid(format!("kvrocks addr {:?}: {e}", config.addr)))?
            .set_redis_settings(redis_info);
        let client = ::redis::Client::open(info)
            .map_err(|e| StoreError::Invalid(format!("kvrocks addr {:?}: {e}", config.addr)))?;
        let conn_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout));
        Ok(RedisStore {
            inner: Arc::new(Inner {
                config,
                client,
                conn_config,
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                last_failure: Mutex::new(None),
                generation: AtomicU64::new(0),
            }),
        })
    }

    /// [`RedisStore::new`] and a `PING`: fails when the server cannot be reached or refuses the
    /// password.
    pub async fn connect(config: StoreConfig) -> Result<Self, StoreError> {
        let store = Self::new(config)?;
        store.ping().await?;
        Ok(store)
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// The log chunks of an activation, in chunk order (through the index).
    pub async fn read_logs(
        &self,
        tenant: &str,
        activation_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        check(keys::check_tenant(tenant))?;
        check(keys::check_name("activation id", activation_id))?;
        let index = keys::log_index(tenant, activation_id);
        let members: Vec<String> = self
            .run("ZRANGE", &index, true, |mut c| {
                let index = index.clone();
                async move {
                    ::redis::cmd("ZRANGE")
                        .arg(&index)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        let mut out = Vec::with_capacity(members.len());
        for m in members {
            let n: u64 = m.parse().map_err(|_| StoreError::Corrupt {
                key: index.clone(),
                why: format!("member {m:?} is not a chunk number"),
            })?;
            let key = keys::log_chunk(tenant, activation_id, n);
            let text = self.get(&key).await?.ok_or_else(|| StoreError::Corrupt {
                key: key.clone(),
                why: "indexed chunk is missing".into(),
            })?;
            out.push(String::from_utf8(text).map_err(|_| StoreError::Corrupt {
                key,
                why: "not UTF-8".into(),
            })?);
        }
        Ok(out)
    }

    /// The correlation key's InvocationResult.
    pub async fn result(
        &self,
        tenant: &str,
        request_id: &str,
    ) -> Result<Option<InvocationResult>, StoreError> {
        check(keys::check_tenant(tenant))?;
        check(keys::check_last("request id", request_id))?;
        let key = keys::request_result(tenant, request_id);
        self.get_json(&key).await
    }

    // --- connection ---

    fn current(&self) -> Option<Current> {
        lock(&self.inner.current).clone()
    }

    /// Forgets the connection of `generation` (if it is still the current one).
    fn invalidate(&self, generation: u64) {
        let mut cur = lock(&self.inner.current);
        if cur.as_ref().is_some_and(|c| c.generation == generation) {
            *cur = None;
        }
    }

    /// The current connection, or a new one. `bool`: made by this call.
    async fn connection(&self) -> Result<(Current, bool), StoreError> {
        if let Some(c) = self.current() {
            return Ok((c, false));
        }
        let asked = Instant::now();
        let _attempt = self.inner.connecting.lock().await;
        if let Some(c) = self.current() {
            return Ok((c, false));
        }
        if let Some((at, why)) = lock(&self.inner.last_failure).clone() {
            if at >= asked {
                // An attempt made while we waited failed: share its outcome.
                return Err(StoreError::Unavailable(why));
            }
        }
        let addr = &self.inner.config.addr;
        let attempt = self
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&self.inner.conn_config);
        let failure =
            match tokio::time::timeout(self.inner.config.connect_timeout + GRACE, attempt).await {
                Ok(Ok(conn)) => {
                    let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
                    let cur = Current { generation, conn };
                    *lock(&self.inner.current) = Some(cur.clone());
                    *lock(&self.inner.last_failure) = None;
                    return Ok((cur, true));
                }
                Ok(Err(e)) if is_auth_error(&e) => {
                    format!("kvrocks at {addr} refused the credentials: {e}")
                }
                Ok(Err(e)) if e.is_timeout() => format!(
                    "cannot connect to kvrocks at {addr}: no answer within {:?}",
                    self.inner.config.connect_timeout
                ),
                Ok(Err(e)) => format!("cannot connect to kvrocks at {addr}: {e}"),
                Err(_) => format!(
                    "cannot connect to kvrocks at {addr}: no answer within {:?}",
                    self.inner.config.connect_timeout
                ),
            };
        *lock(&self.inner.last_failure) = Some((Instant::now(), failure.clone()));
        Err(StoreError::Unavailable(failure))
    }

    /// Runs `f` on the connection, bounded by the response timeout, and maps its errors.
    /// `idempotent`: may be sent again when an old connection turns out to be dead.
    async fn run<T, F, Fut>(
        &self,
        what: &str,
        key: &str,
        idempotent: bool,
        f: F,
    ) -> Result<T, StoreError>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let limit = self.inner.config.response_timeout + GRACE;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (cur, fresh) = self.connection().await?;
            match tokio::time::timeout(limit, f(cur.conn.clone())).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => {
                    let (err, broken) = if e.is_timeout() {
                        let err = StoreError::Unavailable(format!(
                            "{what} {key}: no reply within {:?}",
                            self.inner.config.response_timeout
                        ));
                        (err, true)
                    } else {
                        classify(&e, what, key)
                    };
                    if broken {
                        self.invalidate(cur.generation);
                    }
                    if broken && idempotent && !fresh && attempt == 1 && is_dropped(&e) {
                        continue;
                    }
                    return Err(err);
                }
                Err(_) => {
                    self.invalidate(cur.generation);
                    return Err(StoreError::Unavailable(format!(
                        "{what} {key}: no reply within {:?}",
                        self.inner.config.response_timeout
                    )));
                }
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run("GET", key, true, |mut c| async move {
            ::redis::cmd("GET")
                .arg(key)
                .query_async::<Option<Vec<u8>>>(&mut c)
                .await
        })
        .await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.get(key).await? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        key: key.to_string(),
                        why: format!("not the expected JSON: {e}"),
                    })
            }
        }
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<u64>) -> Result<(), StoreError> {
        self.run("SET", key, true, |mut c| async move {
            let mut cmd = ::redis::cmd("SET");
            cmd.arg(key).arg(value);
            if let Some(ttl) = ttl {
                cmd.arg("EX").arg(ttl);
            }
            cmd.query_async::<()>(&mut c).await
        })
        .await
    }

    fn function_names(tenant: &str, namespace: &str, function: &str) -> Result<(), StoreError> {
        check(keys::check_tenant(tenant))?;
        check(keys::check_name("namespace", namespace))?;
        check(keys::check_name("function", function))
    }

    fn activation_names(tenant: &str, activation_id: &str) -> Result<(), StoreError> {
        check(keys::check_tenant(tenant))?;
        check(keys::check_name("activation id", activation_id))
    }

    fn record_names(record: &ActivationRecord) -> Result<(), StoreError> {
        Self::activation_names(&record.tenant, &record.activation_id)
    }
}

impl Store for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let reply: String = self
            .run("PING", "", true, |mut c| async move {
                ::redis::cmd("PING").query_async(&mut c).await
            })
            .await?;
        if reply.eq_ignore_ascii_case("PONG") {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!("PING answered {reply:?}")))
        }
    }

    async fn alias(
        &self,
        tenant: &str,
        namespace: &str,
        function: &str,
        alias: &str,
    ) -> Result<Option<AliasRecord>, StoreError> {
        Self::function_names(tenant, namespace, function)?;
        check(keys::check_name("alias", alias))?;
        let key = keys::alias(tenant, namespace, function, alias);
        match self.get(&key).await? {
            None => Ok(None),
            Some(raw) => parse_alias(&key, &raw).map(Some),
        }
    }

    async fn begin(&self, b: &Begin<'_>) -> Result<Begun, StoreError> {
        let record = b.record;
        Self::record_names(record)?;
        let mut value = serde_json::to_value(record).map_err(|e| {
            StoreError::Invalid(format!("activation record does not serialise: {e}"))
        })?;
        value["status"] = serde_json::Value::from(ActivationStatus::Running.as_str());
        let json = value.to_string();
        let status_key = keys::activation_status(&record.tenant, &record.activation_id);
        let meta_key = keys::activation_meta(&record.tenant, &record.activation_id);
        let mut key_list = vec![status_key.clone(), meta_key.clone()];
        let mut expected: &[u8] = b"";
        let alias_key = match b.alias {
            None => None,
            Some((name, seen)) => {
                check(keys::check_name("alias", name))?;
                let k = keys::alias(&record.tenant, &record.namespace, &record.function, name);
                key_list.push(k.clone());
                expected = seen.map(|s| s.token.as_slice()).unwrap_or_default();
                Some(k)
            }
        };
        // Without a version the running record cannot be written yet; without a previous read
        // of the alias there is nothing to compare it with.
        let write = b.write
            && record.reference.version.is_some()
            && b.alias.is_none_or(|(_, seen)| seen.is_some());
        let ttl = self.inner.config.activation_ttl_seconds.to_string();
        let flag: &[u8] = if write { b"1" } else { b"0" };
        let arg_list: [&[u8]; 4] = [json.as_bytes(), ttl.as_bytes(), flag, expected];
        let reply: Vec<Value> = self
            .run("begin", &meta_key, true, |mut c| {
                let keys: Vec<&str> = key_list.iter().map(String::as_str).collect();
                let args = &arg_list;
                async move {
                    match eval(&BEGIN_SCRIPT, &mut c, &keys, args).await? {
                        Value::Array(v) => Ok(v),
                        other => Ok(vec![other]),
                    }
                }
            })
            .await?;
        let bad =
            || StoreError::Unavailable(format!("begin {meta_key}: unexpected reply {reply:?}"));
        let int = |v: &Value| match v {
            Value::Int(n) => Some(*n),
            _ => None,
        };
        let bytes = |v: &Value| match v {
            Value::BulkString(b) => Some(b.clone()),
            _ => None,
        };
        let [found, cur, alias_found, alias, written] = reply.as_slice() else {
            return Err(bad());
        };
        let (Some(found), Some(cur), Some(alias_found), Some(alias), Some(written)) = (
            int(found),
            bytes(cur),
            int(alias_found),
            bytes(alias),
            int(written),
        ) else {
            return Err(bad());
        };
        let status = match found {
            0 => Ok(None),
            _ => parse_status(&status_key, &cur).map(Some),
        };
        let alias = alias_key.map(|key| match alias_found {
            0 => Ok(None),
            _ => parse_alias(&key, &alias).map(|record| {
                Some(AliasSeen {
                    record,
                    token: alias,
                })
            }),
        });
        Ok(Begun {
            status,
            alias,
            running: written == 1,
        })
    }

    async fn version_meta(
        &self,
        tenant: &str,
        namespace: &str,
        function: &str,
        version: u64,
    ) -> Result<Option<VersionMeta>, StoreError> {
        Self::function_names(tenant, namespace, function)?;
        let key = keys::version_meta(tenant, namespace, function, version);
        let Some(mut meta) = self.get_json::<VersionMeta>(&key).await? else {
            return Ok(None);
        };
        if meta.version != version {
            return Err(StoreError::Corrupt {
                key,
                why: format!("holds version {}, not {version}", meta.version),
            });
        }
        if meta.sha256.len() != 64 || !meta.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Corrupt {
                key,
                why: format!("sha256 {:?} is not 64 hex digits", meta.sha256),
            });
        }
        meta.sha256.make_ascii_lowercase();
        Ok(Some(meta))
    }

    async fn bundle(
        &self,
        tenant: &str,
        namespace: &str,
        function: &str,
        version: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Self::function_names(tenant, namespace, function)?;
        let key = keys::version_bundle(tenant, namespace, function, version);
        let key = key.as_str();
        let len: u64 = self
            .run("STRLEN", key, true, |mut c| async move {
                ::redis::cmd("STRLEN").arg(key).query_async(&mut c).await
            })
            .await?;
        let too_big = |len: u64| StoreError::Corrupt {
            key: key.to_string(),
            why: format!("bundle is {len} bytes; the limit is {MAX_BUNDLE_BYTES} bytes (16 MiB)"),
        };
        if len > MAX_BUNDLE_BYTES as u64 {
            return Err(too_big(len));
        }
        if len == 0 {
            let exists: bool = self
                .run("EXISTS", key, true, |mut c| async move {
                    ::redis::cmd("EXISTS").arg(key).query_async(&mut c).await
                })
                .await?;
            return Ok(exists.then(Vec::new));
        }
        // GETRANGE bounds the read even if the value grew since STRLEN.
        let bytes: Vec<u8> = self
            .run("GETRANGE", key, true, |mut c| async move {
                ::redis::cmd("GETRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(MAX_BUNDLE_BYTES)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(too_big(bytes.len() as u64));
        }
        if bytes.is_empty() {
            return Ok(None); // deleted between STRLEN and GETRANGE
        }
        Ok(Some(bytes))
    }

    async fn activation_meta(
        &self,
        tenant: &str,
        activation_id: &str,
    ) -> Result<Option<ActivationRecord>, StoreError> {
        Self::activation_names(tenant, activation_id)?;
        let key = keys::activation_meta(tenant, activation_id);
        let record: Option<ActivationRecord> = self.get_json(&key).await?;
        if let Some(r) = &record {
            if r.tenant != tenant || r.activation_id != activation_id {
                return Err(StoreError::Corrupt {
                    key,
                    why: format!(
                        "record is for tenant {:?} activation {:?}",
                        r.tenant, r.activation_id
                    ),
                });
            }
        }
        Ok(record)
    }

    async fn activation_status(
        &self,
        tenant: &str,
        activation_id: &str,
    ) -> Result<Option<ActivationStatus>, StoreError> {
        Self::activation_names(tenant, activation_id)?;
        let key = keys::activation_status(tenant, activation_id);
        let Some(raw) = self.get(&key).await? else {
            return Ok(None);
        };
        parse_status(&key, &raw).map(Some)
    }

    async fn write_running(&self, record: &ActivationRecord) -> Result<RunningWrite, StoreError> {
        Self::record_names(record)?;
        let mut value = serde_json::to_value(record).map_err(|e| {
            StoreError::Invalid(format!("activation record does not serialise: {e}"))
        })?;
        value["status"] = serde_json::Value::from(ActivationStatus::Running.as_str());
        let json = value.to_string();
        let status_key = keys::activation_status(&record.tenant, &record.activation_id);
        let meta_key = keys::activation_meta(&record.tenant, &record.activation_id);
        let ttl = self.inner.config.activation_ttl_seconds.to_string();
        let reply = self
            .run("running write", &meta_key, true, |mut c| {
                let keys = [status_key.as_str(), meta_key.as_str()];
                let args = [json.as_bytes(), ttl.as_bytes()];
                async move { eval(&RUNNING_SCRIPT, &mut c, &keys, &args).await }
            })
            .await?;
        match reply {
            Value::Int(1) => Ok(RunningWrite::Started),
            Value::BulkString(raw) => {
                parse_status(&status_key, &raw).map(RunningWrite::AlreadyTerminal)
            }
            other => Err(StoreError::Unavailable(format!(
                "running write {meta_key}: unexpected reply {other:?}"
            ))),
        }
    }

    async fn write_terminal(&self, t: &Terminal<'_>) -> Result<bool, StoreError> {
        let record = t.record;
        Self::record_names(record)?;
        check(keys::check_last("request id", &t.result.request_id))?;
        if !record.status.is_terminal() {
            return Err(StoreError::Invalid(format!(
                "terminal write of activation {} with status running",
                record.activation_id
            )));
        }
        let json = serde_json::to_string(record).map_err(|e| {
            StoreError::Invalid(format!("activation record does not serialise: {e}"))
        })?;
        let correlation = serde_json::to_string(t.result)
            .map_err(|e| StoreError::Invalid(format!("result does not serialise: {e}")))?;
        let (tenant, aid) = (&record.tenant, &record.activation_id);
        let chunks = chunk_logs(t.logs, LOG_CHUNK_BYTES);
        let mut key_list = vec![
            keys::activation_status(tenant, aid),
            keys::activation_meta(tenant, aid),
            keys::log_index(tenant, aid),
            keys::request_result(tenant, &t.result.request_id),
        ];
        key_list.extend((0..chunks.len()).map(|n| keys::log_chunk(tenant, aid, n as u64)));
        let ttl = self.inner.config.activation_ttl_seconds.to_string();
        let correlation_ttl = self.inner.config.correlation_ttl_seconds.to_string();
        let status = record.status.as_str();
        let mut arg_list: Vec<&[u8]> = vec![
            json.as_bytes(),
            status.as_bytes(),
            ttl.as_bytes(),
            correlation.as_bytes(),
            correlation_ttl.as_bytes(),
        ];
        arg_list.extend(chunks.iter().map(|c| c.as_bytes()));
        let meta_key = key_list[1].clone();
        let reply = self
            .run("terminal compare-and-set", &meta_key, true, |mut c| {
                let keys: Vec<&str> = key_list.iter().map(String::as_str).collect();
                let args = &arg_list;
                async move { eval(&TERMINAL_SCRIPT, &mut c, &keys, args).await }
            })
            .await?;
        match reply {
            Value::Int(1) => Ok(true),
            Value::Int(0) => Ok(false),
            other => Err(StoreError::Unavailable(format!(
                "terminal compare-and-set {meta_key}: unexpected reply {other:?}"
            ))),
        }
    }

    async fn write_logs(
        &self,
        tenant: &str,
        activation_id: &str,
        lines: &[String],
    ) -> Result<usize, StoreError> {
        Self::activation_names(tenant, activation_id)?;
        let chunks = chunk_logs(lines, LOG_CHUNK_BYTES);
        if chunks.is_empty() {
            return Ok(0);
        }
        let ttl = self.inner.config.activation_ttl_seconds;
        let index = keys::log_index(tenant, activation_id);
        let mut pipe = ::redis::pipe();
        pipe.atomic().cmd("DEL").arg(&index).ignore();
        for (n, text) in chunks.iter().enumerate() {
            pipe.cmd("SET")
                .arg(keys::log_chunk(tenant, activation_id, n as u64))
                .arg(text)
                .arg("EX")
                .arg(ttl)
                .ignore();
        }
        let mut zadd = ::redis::cmd("ZADD");
        zadd.arg(&index);
        for n in 0..chunks.len() {
            zadd.arg(n).arg(n);
        }
        pipe.add_command(zadd).ignore();
        pipe.cmd("EXPIRE").arg(&index).arg(ttl).ignore();
        let pipe = &pipe;
        self.run("log write", &index, true, |mut c| async move {
            pipe.query_async::<()>(&mut c).await
        })
        .await?;
        Ok(chunks.len())
    }

    async fn secrets(
        &self,
        tenant: &str,
        paths: &[String],
    ) -> Result<Vec<Option<String>>, StoreError> {
        self.mget_secrets(tenant, paths).await
    }

    async fn write_result(
        &self,
        tenant: &str,
        result: &InvocationResult,
    ) -> Result<(), StoreError> {
        check(keys::check_tenant(tenant))?;
        check(keys::check_last("request id", &result.request_id))?;
        let key = keys::request_result(tenant, &result.request_id);
        let json = serde_json::to_vec(result)
            .map_err(|e| StoreError::Invalid(format!("result does not serialise: {e}")))?;
        self.set(&key, &json, Some(self.inner.config.correlation_ttl_seconds))
            .await
    }
}

impl RedisStore {
    async fn mget_secrets(
        &self,
        tenant: &str,
        paths: &[String],
    ) -> Result<Vec<Option<String>>, StoreError> {
        check(keys::check_tenant(tenant))?;
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let full: Vec<String> = paths.iter().map(|p| keys::secret(tenant, p)).collect();
        let first = full[0].clone();
        let values = self
            .run("MGET", &first, true, |mut c| {
                let full = full.clone();
                async move {
                    ::redis::cmd("MGET")
                        .arg(&full)
                        .query_async::<Vec<Option<Vec<u8>>>>(&mut c)
                        .await
                }
            })
            .await?;
        if values.len() != full.len() {
            return Err(StoreError::Corrupt {
                key: first,
                why: format!(
                    "MGET answered {} values for {} keys",
                    values.len(),
                    full.len()
                ),
            });
        }
        values
            .into_iter()
            .zip(full)
            .map(|(v, key)| match v {
                None => Ok(None),
                Some(b) => String::from_utf8(b)
                    .map(Some)
                    .map_err(|_| StoreError::Corrupt {
                        key,
                        why: "the secret is not UTF-8".into(),
                    }),
            })
            .collect()
    }
}

impl UserKv for RedisStore {
    async fn kv_get(&self, tenant: &str, key: &str) -> Result<Option<String>, StoreError> {
        check(keys::check_tenant(tenant))?;
        check(keys::check_last("key", key))?;
        let full = keys::user_kv(tenant, key);
        match self.get(&full).await? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| StoreError::Corrupt {
                    key: full,
                    why: "value is not UTF-8".into(),
                }),
        }
    }

    async fn kv_set(
        &self,
        tenant: &str,
        key: &str,
        value_json: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<(), StoreError> {
        check(keys::check_tenant(tenant))?;
        check(keys::check_last("key", key))?;
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(value_json) {
            return Err(StoreError::Invalid(format!(
                "cs.kv value for {key:?} is not JSON: {e}"
            )));
        }
        let full = keys::user_kv(tenant, key);
        self.set(&full, value_json.as_bytes(), ttl_seconds.filter(|s| *s > 0))
            .await
    }

    async fn kv_del(&self, tenant: &str, key: &str) -> Result<bool, StoreError> {
        check(keys::check_tenant(tenant))?;
        check(keys::check_last("key", key))?;
        let full = keys::user_kv(tenant, key);
        let full = full.as_str();
        let n: u64 = self
            .run("DEL", full, true, |mut c| async move {
                ::redis::cmd("DEL").arg(full).query_async(&mut c).await
            })
            .await?;
        Ok(n > 0)
    }
}

fn check(r: Result<(), keys::KeyError>) -> Result<(), StoreError> {
    r.map_err(|e| StoreError::Invalid(e.to_string()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn parse_status(key: &str, raw: &[u8]) -> Result<ActivationStatus, StoreError> {
    std::str::from_utf8(raw)
        .map_err(|_| "not UTF-8".to_string())
        .and_then(|s| {
            s.parse()
                .map_err(|e: super::records::UnknownStatus| e.to_string())
        })
        .map_err(|why| StoreError::Corrupt {
            key: key.to_string(),
            why,
        })
}

/// An alias record: JSON with a version of at least 1.
fn parse_alias(key: &str, raw: &[u8]) -> Result<AliasRecord, StoreError> {
    let record: AliasRecord = serde_json::from_slice(raw).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        why: format!("not the expected JSON: {e}"),
    })?;
    if record.version == 0 {
        return Err(StoreError::Corrupt {
            key: key.to_string(),
            why: "version is 0".into(),
        });
    }
    Ok(record)
}

/// `host:port` or `[v6]:port`.
fn parse_addr(addr: &str) -> Result<(String, u16), StoreError> {
    let bad = |why: &str| StoreError::Invalid(format!("kvrocks addr {addr:?}: {why}"));
    let (host, port) = addr
        .trim()
        .rsplit_once(':')
        .ok_or_else(|| bad("expected host:port"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
    if port == 0 {
        return Err(bad("port 0"));
    }
    Ok((host.to_string(), port))
}

fn is_auth_error(e: &RedisError) -> bool {
    e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
        || {
            let s = e.to_string();
            s.contains("WRONGPASS") || s.contains("NOAUTH") || s.contains("invalid password")
        }
}

/// The connection broke before or while the command was sent (not a reply timeout).
fn is_dropped(e: &RedisError) -> bool {
    e.is_connection_dropped() || e.is_connection_refusal()
}

/// Maps a command error; `bool`: the connection must be replaced.
fn classify(e: &RedisError, what: &str, key: &str) -> (StoreError, bool) {
    let here = if key.is_empty() {
        what.to_string()
    } else {
        format!("{what} {key}")
    };
    if e.code() == Some("WRONGTYPE") || e.to_string().contains("WRONGTYPE") {
        return (
            StoreError::Corrupt {
                key: key.to_string(),
                why: format!("wrong type: {e}"),
            },
            false,
        );
    }
    if is_auth_error(e) {
        return (
            StoreError::Unavailable(format!("{here}: kvrocks refused the credentials: {e}")),
            true,
        );
    }
    let broken = e.is_io_error() || e.is_timeout() || e.is_unrecoverable_error();
    (StoreError::Unavailable(format!("{here}: {e}")), broken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_addr("localhost:6666").unwrap(),
            ("localhost".into(), 6666)
        );
        assert_eq!(parse_addr("[::1]:7000").unwrap(), ("::1".into(), 7000));
        assert!(parse_addr("localhost").is_err());
        assert!(parse_addr(":6666").is_err());
        assert!(parse_addr("h:0").is_err());
        assert!(parse_addr("h:x").is_err());
    }

    #[test]
    fn scripts_have_their_sha1() {
        assert_eq!(RUNNING_SCRIPT.get_hash().len(), 40);
        assert_ne!(RUNNING_SCRIPT.get_hash(), TERMINAL_SCRIPT.get_hash());
        assert_ne!(BEGIN_SCRIPT.get_hash(), RUNNING_SCRIPT.get_hash());
    }
}
