// A fresh process per invocation (`node runner.mjs` or `deno run --allow-read runner.mjs`):
// import the handler, parse the event, call, print the result as JSON — what a user without
// a pool pays per call.
// usage: runner.mjs <handler.mjs> <event.json>
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import process from 'node:process';

const [handlerPath, eventPath] = process.argv.slice(2);
const { default: handle } = await import(pathToFileURL(handlerPath).href);
const r = await handle(JSON.parse(readFileSync(eventPath, 'utf8')), {});
process.stdout.write(JSON.stringify(r) + '\n');
