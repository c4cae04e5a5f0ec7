//! `URL` and `URLSearchParams`: the WHATWG URL Standard, parsed and serialised by the `url`
//! crate (Servo's parser, the same standard Node's Ada implements), with its `quirks` module for
//! the attribute getters and setters and `form_urlencoded` for query strings. The classes are
//! `url.js`.
//!
//! A URL crosses into JavaScript as its eleven attributes at once (`href` first), so getters are
//! field reads; a setter sends the `href` and the new value back and receives all eleven again.

use rquickjs::{Ctx, Function, Object, Result, Value};
use url::{quirks, Url};

const GLUE: &str = include_str!("url.js");

/// The attributes, in the order the glue indexes them.
fn components(u: &Url) -> Vec<String> {
    vec![
        quirks::href(u).to_string(),
        quirks::origin(u),
        quirks::protocol(u).to_string(),
        quirks::username(u).to_string(),
        quirks::password(u).to_string(),
        quirks::host(u).to_string(),
        quirks::hostname(u).to_string(),
        quirks::port(u).to_string(),
        quirks::pathname(u).to_string(),
        quirks::search(u).to_string(),
        quirks::hash(u).to_string(),
    ]
}

fn parse(input: &str, base: Option<&str>) -> Option<Url> {
    match base {
        Some(b) => Url::parse(b).ok()?.join(input).ok(),
        None => Url::parse(input).ok(),
    }
}

pub fn build<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
    let n = super::common_natives(ctx)?;
    let enc = super::exports(ctx, "encoding")?;
    n.set("nodeError", enc.get::<_, Value>("nodeError")?)?;
    // parse(input, base?) → the attributes, or null when either does not parse.
    n.set(
        "parse",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, input: Value<'js>, base: Value<'js>| -> Result<Option<Vec<String>>> {
                let input = super::utf8(&ctx, &input)?;
                let base = if base.is_undefined() {
                    None
                } else {
                    Some(super::utf8(&ctx, &base)?)
                };
                Ok(parse(&input, base.as_deref()).map(|u| components(&u)))
            },
        )?,
    )?;
    // set(href, attribute index, value) → the attributes after the setter, or null when an
    // `href` assignment does not parse (the only setter that throws; the others ignore a
    // value they cannot use, as the standard says).
    n.set(
        "set",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             href: String,
             which: u32,
             value: Value<'js>|
             -> Result<Option<Vec<String>>> {
                let value = super::utf8(&ctx, &value)?;
                let Ok(mut u) = Url::parse(&href) else {
                    return Ok(None);
                };
                if which == 0 {
                    // The only setter that fails (and then throws).
                    if quirks::set_href(&mut u, &value).is_err() {
                        return Ok(None);
                    }
                } else {
                    // The others ignore a value they cannot use, as the URL Standard says.
                    match which {
                        2 => drop(quirks::set_protocol(&mut u, &value)),
                        3 => drop(quirks::set_username(&mut u, &value)),
                        4 => drop(quirks::set_password(&mut u, &value)),
                        5 => drop(quirks::set_host(&mut u, &value)),
                        6 => drop(quirks::set_hostname(&mut u, &value)),
                        7 => drop(quirks::set_port(&mut u, &value)),
                        8 => quirks::set_pathname(&mut u, &value),
                        9 => quirks::set_search(&mut u, &value),
                        10 => quirks::set_hash(&mut u, &value),
                        _ => {}
                    }
                }
                Ok(Some(components(&u)))
            },
        )?,
    )?;
    // parseQuery(string) → [name, value, name, value, ...] (application/x-www-form-urlencoded).
    n.set(
        "parseQuery",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, s: Value<'js>| -> Result<Vec<String>> {
                let s = super::utf8(&ctx, &s)?;
                let mut out = Vec::new();
                for (k, v) in url::form_urlencoded::parse(s.as_bytes()) {
                    out.push(k.into_owned());
                    out.push(v.into_owned());
                }
                Ok(out)
            },
        )?,
    )?;
    // serializeQuery([name, value, ...]) → string.
    n.set(
        "serializeQuery",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, list: Vec<Value<'js>>| -> Result<String> {
                let mut ser = url::form_urlencoded::Serializer::new(String::new());
                for pair in list.chunks(2) {
                    let k = super::utf8(&ctx, &pair[0])?;
                    let v = match pair.get(1) {
                        Some(v) => super::utf8(&ctx, v)?,
                        None => String::new(),
                    };
                    ser.append_pair(&k, &v);
                }
                Ok(ser.finish())
            },
        )?,
    )?;
    super::glue(ctx, "url.js", GLUE, n)
}
