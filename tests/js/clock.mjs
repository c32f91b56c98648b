// A manual clock: setTimeout/setInterval run only when advance() passes their time.
let now = 0, seq = 0;
const timers = new Map();
export function install() {
  globalThis.setTimeout = (fn, ms = 0) => { const id = ++seq; timers.set(id, { fn, at: now + Math.max(0, ms), every: 0 }); return id; };
  globalThis.setInterval = (fn, ms) => { const id = ++seq; timers.set(id, { fn, at: now + ms, every: ms }); return id; };
  globalThis.clearTimeout = globalThis.clearInterval = (id) => { timers.delete(id); };
  Date.now = () => now;
}
export function advance(ms) {
  const until = now + ms;
  for (;;) {
    let next = null;
    for (const [id, t] of timers) if (t.at <= until && (!next || t.at < next[1].at)) next = [id, t];
    if (!next) break;
    const [id, t] = next;
    now = t.at;
    if (t.every) t.at += t.every; else timers.delete(id);
    t.fn();
  }
  now = until;
}
export const time = () => now;
