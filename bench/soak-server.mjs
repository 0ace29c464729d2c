// soak-server.mjs — what bench/soak.mjs and bench/slowloris.mjs share:
// starting (or finding) a `cinfer serve`, reading its /metrics gauges and
// its resident memory. Node built-ins only.
import { spawn } from 'node:child_process';
import fs from 'node:fs';

// Long options into an object: `--max-tokens 64` -> opt.maxTokens = 64
// (numbers where the default is a number). Unknown options exit 2.
export function parseOptions(argv, defaults, usage) {
  const opt = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') { console.log(usage); process.exit(0); }
    const key = a.replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!a.startsWith('--') || !(key in defaults) || i + 1 >= argv.length) {
      console.error(`unknown option or missing value: ${a}\n\n${usage}`);
      process.exit(2);
    }
    const v = argv[++i];
    opt[key] = typeof defaults[key] === 'number' ? Number(v) : v;
    if (typeof defaults[key] === 'number' && !Number.isFinite(opt[key])) {
      console.error(`${a} takes a number, not '${v}'`);
      process.exit(2);
    }
  }
  return opt;
}

// Starts `BIN serve MODEL --port 0 ...extra` on 127.0.0.1 and resolves once it
// prints its address and /health answers. `srv.base` is http://127.0.0.1:PORT.
export async function startServer(bin, model, extra) {
  const args = ['serve', model, '--host', '127.0.0.1', '--port', '0', ...extra];
  const proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '', exit = null;
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => { exit = { code, signal, at: Date.now() }; resolve(exit); }));
  process.on('exit', () => { if (!exit) proc.kill('SIGKILL'); });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 120 s:\n${log}`)), 120000);
    proc.stderr.on('data', (d) => {
      log = (log + d).slice(-50000);
      const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    exited.then((e) => { clearTimeout(timer); reject(new Error(`server exited (${e.code ?? e.signal}):\n${log}`)); });
  });
  const srv = { proc, pid: proc.pid, port, base: `http://127.0.0.1:${port}`, exited, log: () => log, exit: () => exit,
    alive: () => exit === null, args: [bin, ...args].join(' ') };
  for (let i = 0; i < 600; i++) {
    try { if ((await fetch(`${srv.base}/health`)).status === 200) return srv; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('/health did not answer 200 within 60 s');
}

// SIGTERM, then SIGKILL when it is still there after graceMs. Resolves the exit.
export async function stopServer(srv, graceMs = 40000) {
  if (!srv.alive()) return srv.exit();
  const t0 = Date.now();
  srv.proc.kill('SIGTERM');
  const e = await Promise.race([srv.exited, new Promise((r) => setTimeout(() => r(null), graceMs))]);
  if (e) return { ...e, seconds: (e.at - t0) / 1000 };
  srv.proc.kill('SIGKILL');
  return { ...(await srv.exited), seconds: (Date.now() - t0) / 1000, killed: true };
}

// http://host:port from a URL given with or without /v1
export const origin = (url) => new URL(url).origin;

// VmRSS of a process in MiB, NaN when it is gone or unreadable.
export function rssMiB(pid) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
    return m ? Number(m[1]) / 1024 : NaN;
  } catch { return NaN; }
}

// The process listening on a local TCP port (for --url: RSS needs a pid):
// the socket inode from /proc/net/tcp*, then the /proc/PID/fd that holds it.
// null when not found (another user's process, a remote server).
export function listenerPid(port) {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try { text = fs.readFileSync(f, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c.length > 9 && c[1].endsWith(`:${hex}`) && c[3] === '0A') inodes.add(`socket:[${c[9]}]`);
    }
  }
  if (!inodes.size) return null;
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let fds = [];
    try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch { continue; }
    for (const fd of fds) {
      try { if (inodes.has(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))) return Number(pid); } catch { /* closed meanwhile */ }
    }
  }
  return null;
}

// The scheduler gauges from /metrics, under cinfer's names or vLLM's.
// kv: KV blocks held by sequences (cinfer_kv_blocks_used), else vLLM's usage
// fraction (0 = none in use). NaN for a gauge the server does not export.
const NAMES = {
  running: ['cinfer_num_requests_running', 'vllm:num_requests_running'],
  waiting: ['cinfer_num_requests_waiting', 'vllm:num_requests_waiting'],
  kvUsed: ['cinfer_kv_blocks_used', 'vllm:kv_blocks_used'],
  kvPerc: ['cinfer_kv_cache_usage_perc', 'vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc'],
  kvTotal: ['cinfer_kv_blocks_total', 'vllm:num_gpu_blocks'],
  generated: ['cinfer_generation_tokens_total', 'vllm:generation_tokens_total'],
  preemptions: ['cinfer_num_preemptions_total', 'vllm:num_preemptions_total'],
};
export function parseMetrics(text) {
  const out = {};
  for (const [k, names] of Object.entries(NAMES)) {
    out[k] = NaN;
    for (const name of names) {
      const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const re = new RegExp(`^${esc}(?:\\{[^}]*\\})? ([0-9.eE+-]+|NaN)$`, 'gm');
      let m, sum = null;
      while ((m = re.exec(text))) sum = (sum ?? 0) + Number(m[1]);
      if (sum !== null) { out[k] = sum; break; }
    }
  }
  out.kv = Number.isNaN(out.kvUsed) ? out.kvPerc : out.kvUsed;
  return out;
}
export async function metrics(base, headers = {}) {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), 10000);
  try {
    const r = await fetch(`${base}/metrics`, { headers, signal: ctl.signal });
    if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
    return parseMetrics(await r.text());
  } finally { clearTimeout(t); }
}

// Deterministic random numbers (xorshift32) so a run can be repeated.
export function rng(seed) {
  let s = (seed >>> 0) || 1;
  const next = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
  next.int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1));
  return next;
}

export const pct = (xs, q) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
