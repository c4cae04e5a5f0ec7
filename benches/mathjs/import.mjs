// Node's baseline for the same bundle: the time of one dynamic import (parse, link, evaluate)
// in a fresh process, in milliseconds, then the handler's answer as a check.
const url = new URL(process.argv[2], `file://${process.cwd()}/`).href;
const t = process.hrtime.bigint();
const m = await import(url);
const ms = Number(process.hrtime.bigint() - t) / 1e6;
console.log(`${ms.toFixed(3)} ${m.default({ expr: '2 + 3 * 4' }).body}`);
