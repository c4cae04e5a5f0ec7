// A webhook receiver that checks the sender's signature before trusting the payload, the way
// GitHub (X-Hub-Signature-256), Stripe and Shopify sign theirs: an HMAC-SHA256 of the raw body
// with a shared secret, sent hex-encoded in a header. The secret is the version's config.env
// (process.env.WEBHOOK_SECRET; `cs-invoker-pool run --env WEBHOOK_SECRET=...` locally).
//
// The event is Sous' HTTP event (API Gateway v2 shape): headers, and the body as text or
// base64 (isBase64Encoded). Web Crypto verifies the signature in constant time.
//
//   cs-invoker-pool run examples/webhook-hmac --trigger http --env WEBHOOK_SECRET=s3cret \
//     --event-file examples/webhook-hmac/event.json

const encoder = new TextEncoder();

function header(event, name) {
  for (const [k, v] of Object.entries(event.headers ?? {})) {
    if (k.toLowerCase() === name) return String(v);
  }
  return '';
}

function rawBody(event) {
  const body = event.body ?? '';
  if (!event.isBase64Encoded) return encoder.encode(body);
  return Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
}

function fromHex(hex) {
  if (!/^([0-9a-f]{2})*$/i.test(hex)) return null;
  return Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
}

export default async function handle(event) {
  const secret = process.env.WEBHOOK_SECRET;
  if (!secret) {
    return { statusCode: 500, body: 'WEBHOOK_SECRET is not configured' };
  }
  const signature = header(event, 'x-hub-signature-256');
  const mac = signature.startsWith('sha256=') ? fromHex(signature.slice(7)) : null;
  const body = rawBody(event);
  const key = await crypto.subtle.importKey(
    'raw',
    encoder.encode(secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['verify'],
  );
  if (!mac || !(await crypto.subtle.verify('HMAC', key, mac, body))) {
    console.warn('rejected a webhook with a bad signature');
    return { statusCode: 401, body: 'bad signature' };
  }
  const payload = JSON.parse(new TextDecoder().decode(body));
  return {
    statusCode: 202,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ accepted: payload.action, repository: payload.repository?.full_name }),
  };
}
