// isolated-vm (V8 isolates inside one Node process), driven the way a pool of isolates would
// serve our functions: the event crosses as JSON text, the handler runs inside the isolate on
// the parsed event, and its result crosses back as JSON text (what our child does too).
//
// usage: node ivm.mjs <handler.js> <event.json> <warm calls> <cold starts>
// prints one JSON line: per-call samples in microseconds.
import ivm from 'isolated-vm';
import { readFileSync } from 'node:fs';

const [handlerPath, eventPath, warmN, coldN] = process.argv.slice(2);
const source = readFileSync(handlerPath, 'utf8');
const event = readFileSync(eventPath, 'utf8');
const now = () => Number(process.hrtime.bigint()) / 1e3;

// A new isolate, a context, the module compiled and evaluated, and a caller that parses the
// event and stringifies the result inside the isolate.
async function start() {
  const isolate = new ivm.Isolate({ memoryLimit: 64 });
  const context = await isolate.createContext();
  const mod = await isolate.compileModule(source);
  await mod.instantiate(context, () => { throw new Error('no imports'); });
  await mod.evaluate();
  const handler = await mod.namespace.get('default', { reference: true });
  await context.global.set('__handler', handler.derefInto());
  const call = await context.eval(
    '(text) => JSON.stringify(__handler(JSON.parse(text), {}))', { reference: true });
  return { isolate, call };
}

const out = { warm_sync_us: [], warm_async_us: [], cold_us: [] };
const { isolate, call } = await start();
const opts = { arguments: { copy: true }, result: { copy: true } };
for (let i = 0; i < 50; i++) call.applySync(undefined, [event], opts);
for (let i = 0; i < Number(warmN); i++) {
  let t = now();
  call.applySync(undefined, [event], opts);
  out.warm_sync_us.push(now() - t);
  t = now();
  await call.apply(undefined, [event], opts);
  out.warm_async_us.push(now() - t);
}
// Throughput: as many concurrent async callers as cores, each on its own isolate (an isolate
// runs one call at a time), for a fixed number of calls.
const cores = (await import('node:os')).availableParallelism();
const isolates = [{ isolate, call }];
while (isolates.length < cores) isolates.push(await start());
const per = Math.max(1, Number(warmN)) * 4;
const t0 = now();
await Promise.all(isolates.map(async ({ call }) => {
  for (let i = 0; i < per; i++) await call.apply(undefined, [event], opts);
}));
out.throughput_per_s = (per * isolates.length) / ((now() - t0) / 1e6);
for (let i = 0; i < Number(coldN); i++) {
  const t = now();
  const s = await start();
  s.call.applySync(undefined, [event], opts);
  out.cold_us.push(now() - t);
  s.isolate.dispose();
}
process.stdout.write(JSON.stringify(out) + '\n');
