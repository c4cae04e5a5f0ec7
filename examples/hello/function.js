// A small but real cs-js function: reads the event, logs, counts greetings per name in cs.kv
// (allowed by the manifest's capabilities), announces each greeting on a codeQ topic, and
// answers with JSON.
//
//   cs-invoker-pool run examples/hello --event '{"name":"Sous"}'

function nameFrom(event) {
  const name = event && typeof event.name === "string" ? event.name.trim() : "";
  return name === "" ? "world" : name.slice(0, 64);
}

export default async function handle(event, ctx) {
  const name = nameFrom(event);
  const key = `greetings:${name.toLowerCase()}`;

  // cs.kv calls are synchronous; the manifest allows get/set on keys starting "greetings:".
  const greetings = (cs.kv.get(key) ?? 0) + 1;
  cs.kv.set(key, greetings, { ttlSeconds: 3600 });

  console.log(`greeting ${name} (#${greetings}) for tenant ${ctx.tenant}`);
  cs.codeq.publish("greetings.sent", { name, greetings });

  return {
    statusCode: 200,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      message: `Hello, ${name}!`,
      greetings,
      tenant: ctx.tenant,
      activation_id: ctx.activation_id,
    }),
  };
}
