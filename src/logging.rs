//! `serve`'s log lines (Sous docs 14): one JSON object per line on stderr with `ts_ms`,
//! `level`, `service` (`cs-invoker-pool`), `target`, `message`, and the fields of the event and
//! of every span it happened in, at the top level.
//!
//! The pipeline runs each activation inside a `cs.invoke` span carrying `request_id`,
//! `tenant`, `namespace`, `function`, `activation_id` and `trace_id`, so every line written
//! while it runs — a store warning in the host API, a child killed by the pool — names the
//! activation without each call site repeating the fields. A field of the event wins over a
//! span's of the same name; an inner span's over an outer's.
//!
//! Written as a small layer rather than `tracing_subscriber::fmt().json()`: that formatter nests
//! the event's fields under `fields` and the span's under `span`, and has no `ts_ms` or
//! `service`, which are what the Sous log pipeline indexes.

use serde_json::{Map, Value};
use std::io::Write;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The `service` of every line.
pub const SERVICE: &str = "cs-invoker-pool";

/// The layer; see the module documentation.
pub struct JsonLines<W> {
    make_writer: W,
}

impl<W> JsonLines<W> {
    pub fn new(make_writer: W) -> Self {
        JsonLines { make_writer }
    }
}

/// A span's fields, kept in its extensions.
struct SpanFields(Map<String, Value>);

struct Collect<'a>(&'a mut Map<String, Value>);

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), Value::from(format!("{value:?}")));
    }
}

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut Collect(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(SpanFields(fields)) = ext.get_mut::<SpanFields>() {
                values.record(&mut Collect(fields));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Map::new();
        line.insert("ts_ms".into(), Value::from(crate::publish::unix_ms()));
        line.insert(
            "level".into(),
            Value::from(event.metadata().level().as_str().to_ascii_lowercase()),
        );
        line.insert("service".into(), Value::from(SERVICE));
        line.insert("target".into(), Value::from(event.metadata().target()));
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    for (k, v) in fields {
                        line.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        let mut fields = Map::new();
        event.record(&mut Collect(&mut fields));
        for (k, v) in fields {
            // The standard names stay ours.
            if matches!(k.as_str(), "ts_ms" | "level" | "service" | "target") {
                line.insert(format!("field.{k}"), v);
            } else {
                line.insert(k, v);
            }
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        let mut w = self.make_writer.make_writer();
        let _ = w.write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    #[test]
    fn lines_carry_the_standard_fields_and_the_span_s() {
        let buf = Buf::default();
        let sub = tracing_subscriber::registry().with(JsonLines::new(buf.clone()));
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("cs.invoke", tenant = "t1", activation_id = "a1");
            let _g = span.enter();
            tracing::warn!(tenant = "t2", n = 3u64, "hello");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let v: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["service"], SERVICE);
        assert_eq!(v["message"], "hello");
        assert_eq!(v["activation_id"], "a1");
        assert_eq!(v["tenant"], "t2", "the event's own field wins");
        assert_eq!(v["n"], 3);
        assert!(v["ts_ms"].as_u64().unwrap() > 1_700_000_000_000);
    }
}
