'use strict';
/*
 * fake_hub.js — a local stand-in for the Hugging Face Hub and ModelScope, for
 * the hub tests. Node built-ins only; listens on 127.0.0.1, port 0.
 *
 * It speaks the parts of the HTTP APIs cinfer's client uses, as huggingface_hub
 * and the modelscope library see them:
 *   GET  /api/models/ORG/NAME/revision/REV[?blobs=true]
 *        → {id, sha, siblings: [{rfilename, size, blobId, lfs?: {sha256, size, pointerSize}}]}
 *   GET|HEAD /ORG/NAME/resolve/REV/FILE
 *        small files: 200, ETag "<git blob sha1>", X-Repo-Commit, Range
 *        LFS files:   302 to the second ("storage") server, X-Linked-Etag "<sha256>",
 *                     X-Linked-Size, X-Repo-Commit
 *   GET  /api/v1/models/ORG/NAME/repo/files?Revision=R&Recursive=true   (ModelScope)
 *        → {Code: 200, Data: {Files: [{Name, Path, Size, Sha256, Type: "blob", Revision}]}}
 *   GET  /api/v1/models/ORG/NAME/repo?Revision=R&FilePath=F               (ModelScope)
 * A gated repo answers 401 without `Authorization: Bearer <token>`. Faults are
 * armed per file name (dropAfter, corrupt, rateLimit, endless, ...) and every
 * request is logged (server, method, url, range, authorization seen, bytes sent),
 * so the tests can assert what the client fetched.
 *
 * Hashes here come from node:crypto — independent of cinfer's own SHA code.
 */
const http = require('node:http');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');
const gitSha1 = (b) => crypto.createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
const isLfs = (name, data) => /\.(safetensors|gguf|bin|pth)$/.test(name) || data.length > 1024 * 1024;

/* A repo: {gated, token, revisions: {rev: commit}, commits: {commit: [{name, data}]},
 *          listing?: extra raw sibling entries (for hostile metadata)} */
function fileEntry(f) {
  const e = {name: f.name, data: f.data, lfs: isLfs(f.name, f.data)};
  e.sha256 = sha256(f.data);
  e.blobId = gitSha1(f.data);
  return e;
}

function readTree(dir, prefix = '') {
  const out = [];
  for (const n of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, n);
    if (fs.statSync(p).isDirectory()) out.push(...readTree(p, prefix + n + '/'));
    else out.push({name: prefix + n, data: fs.readFileSync(p)});
  }
  return out;
}

class FakeHub {
  constructor() {
    this.repos = new Map();
    this.log = [];
    this.faults = [];  // {match: (file) => bool, kind, bytes?, times, retryAfter?}
    this.storageByHash = new Map();
  }

  addRepo(id, revisions, opts = {}) {
    const commits = {};
    for (const [rev, files] of Object.entries(revisions)) {
      const entries = files.map(fileEntry);
      const commit = opts.commits?.[rev] ?? crypto.createHash('sha1').update(id + rev + entries.map((e) => e.sha256).join()).digest('hex');
      commits[rev] = {commit, entries};
      for (const e of entries) this.storageByHash.set(e.sha256, e);
    }
    this.repos.set(id, {id, commits, gated: !!opts.gated, token: opts.token, extra: opts.extra || [],
                        overrides: opts.overrides || {}, headers: opts.headers || {}});
  }

  fault(kind, file, extra = {}) { this.faults.push({kind, file, times: 1, ...extra}); }

  takeFault(kind, file) {
    const f = this.faults.find((x) => x.kind === kind && (x.file === file || x.file === '*') && x.times > 0);
    if (f) f.times -= 1;
    return f;
  }

  findCommit(repo, rev) {
    for (const c of Object.values(repo.commits)) if (c.commit === rev) return c;
    return repo.commits[rev];
  }

  async start() {
    this.hub = http.createServer((q, s) => this.handle('hub', q, s));
    this.storage = http.createServer((q, s) => this.handle('storage', q, s));
    await Promise.all([this.hub, this.storage].map((srv) => new Promise((r) => srv.listen(0, '127.0.0.1', r))));
    this.port = this.hub.address().port;
    this.storagePort = this.storage.address().port;
    this.url = `http://127.0.0.1:${this.port}`;
    return this;
  }

  stop() {
    for (const srv of [this.hub, this.storage]) { srv.closeAllConnections(); srv.close(); }
  }

  handle(server, req, res) {
    const u = new URL(req.url, 'http://x');
    const entry = {server, method: req.method, url: req.url, range: req.headers.range || null,
                   auth: req.headers.authorization || null, status: 0, sent: 0};
    this.log.push(entry);
    const send = (status, headers, body) => {
      entry.status = status;
      res.writeHead(status, headers);
      if (body && req.method !== 'HEAD') { entry.sent += body.length; res.end(body); } else res.end();
    };
    const json = (status, obj) => send(status, {'Content-Type': 'application/json'}, Buffer.from(JSON.stringify(obj)));
    try {
      if (server === 'storage') {
        const m = /^\/blob\/([0-9a-f]{64})$/.exec(u.pathname);
        const e = m && this.storageByHash.get(m[1]);
        if (!e) return json(404, {error: 'no such blob'});
        return this.serveBytes(req, res, entry, e, {});
      }
      let m = /^\/api\/models\/([^/]+)\/([^/]+)\/revision\/(.+)$/.exec(u.pathname);
      if (m) return this.apiRevision(req, res, entry, json, `${m[1]}/${m[2]}`, decodeURIComponent(m[3]));
      m = /^\/api\/v1\/models\/([^/]+)\/([^/]+)\/repo\/files$/.exec(u.pathname);
      if (m) return this.msFiles(req, json, `${m[1]}/${m[2]}`, u.searchParams.get('Revision'));
      m = /^\/api\/v1\/models\/([^/]+)\/([^/]+)\/repo$/.exec(u.pathname);
      if (m) return this.msFile(req, res, entry, json, `${m[1]}/${m[2]}`, u.searchParams.get('Revision'), u.searchParams.get('FilePath'));
      m = /^\/([^/]+)\/([^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(u.pathname);
      if (m) return this.resolve(req, res, entry, json, `${m[1]}/${m[2]}`, m[3], decodeURIComponent(m[4]));
      return json(404, {error: 'not found'});
    } catch (e) {
      return json(500, {error: String(e)});
    }
  }

  gate(repo, req, json) {
    if (!repo) { json(404, {error: 'Repository not found'}); return false; }
    if (repo.gated && req.headers.authorization !== `Bearer ${repo.token}`) {
      json(401, {error: 'Access to this model is restricted'});
      return false;
    }
    return true;
  }

  apiRevision(req, res, entry, json, id, rev) {
    const repo = this.repos.get(id);
    if (!this.gate(repo, req, json)) return;
    if (this.takeFault('rateLimit', 'api')) {
      entry.status = 429;
      res.writeHead(429, {'Retry-After': '1'});
      return res.end();
    }
    const c = this.findCommit(repo, rev);
    if (!c) return json(404, {error: 'Revision not found'});
    const siblings = c.entries.map((e) => {
      const s = {rfilename: e.name, size: e.data.length, blobId: e.blobId};
      if (e.lfs) s.lfs = {sha256: e.sha256, size: e.data.length, pointerSize: 134};
      return Object.assign(s, repo.overrides[e.name] || {});
    });
    json(200, {id, modelId: id, sha: c.commit, siblings: siblings.concat(repo.extra)});
  }

  resolve(req, res, entry, json, id, rev, file) {
    const repo = this.repos.get(id);
    if (!this.gate(repo, req, json)) return;
    const c = this.findCommit(repo, rev);
    const e = c && c.entries.find((x) => x.name === file);
    if (!e) return json(404, {error: 'Entry not found'});
    const rl = this.takeFault('rateLimit', file);
    if (rl) {
      entry.status = 429;
      res.writeHead(429, {'Retry-After': String(rl.retryAfter ?? 1)});
      return res.end();
    }
    const headers = {'X-Repo-Commit': c.commit, ...(repo.headers[file] || {})};
    if (e.lfs) {
      const loc = this.takeFault('redirect', file);
      entry.status = 302;
      res.writeHead(302, {...headers, 'X-Linked-Etag': `"${e.sha256}"`, 'X-Linked-Size': String(e.data.length),
                          ETag: `"${e.sha256}"`,
                          Location: loc ? loc.to : `http://127.0.0.1:${this.storagePort}/blob/${e.sha256}`, ...(repo.headers[file] || {})});
      return res.end();
    }
    return this.serveBytes(req, res, entry, e, {...headers, ETag: `"${e.blobId}"`});
  }

  msFiles(req, json, id, rev) {
    const repo = this.repos.get(id);
    if (!this.gate(repo, req, json)) return;
    const c = this.findCommit(repo, rev);
    if (!c) return json(404, {Code: 404, Message: 'revision not found'});
    const files = c.entries.map((e) => Object.assign({Name: path.basename(e.name), Path: e.name, Size: e.data.length,
                                                       Sha256: e.sha256, Type: 'blob', Revision: c.commit},
                                                      repo.overrides[e.name] || {}));
    json(200, {Code: 200, Data: {Files: files.concat(repo.extra)}, Success: true});
  }

  msFile(req, res, entry, json, id, rev, file) {
    const repo = this.repos.get(id);
    if (!this.gate(repo, req, json)) return;
    const c = this.findCommit(repo, rev);
    const e = c && c.entries.find((x) => x.name === file);
    if (!e) return json(404, {Code: 404});
    return this.serveBytes(req, res, entry, e, {});
  }

  /* Body with Range support and the armed faults for this file. */
  serveBytes(req, res, entry, e, headers) {
    let data = e.data;
    const corrupt = this.takeFault('corrupt', e.name);
    if (corrupt) { data = Buffer.from(data); data[data.length >> 1] ^= 0x20; }
    const endless = this.takeFault('endless', e.name);
    if (endless) {
      entry.status = 200;
      res.writeHead(200, headers); /* chunked, never ends on its own */
      const chunk = Buffer.alloc(64 * 1024, 0x41);
      const pump = () => { while (res.write(chunk)) { entry.sent += chunk.length; if (entry.sent > 64 << 20) return res.destroy(); } };
      res.on('drain', pump);
      res.on('close', () => {});
      return pump();
    }
    let start = 0;
    const r = /^bytes=(\d+)-$/.exec(req.headers.range || '');
    if (r) start = Number(r[1]);
    if (start > data.length) { entry.status = 416; res.writeHead(416); return res.end(); }
    const body = data.subarray(start);
    const h = {...headers, 'Content-Length': String(body.length), 'Accept-Ranges': 'bytes'};
    if (r) h['Content-Range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
    entry.status = r ? 206 : 200;
    res.writeHead(entry.status, h);
    if (req.method === 'HEAD') return res.end();
    const stall = this.takeFault('stall', e.name);
    if (stall) { /* some bytes, then silence with the connection open */
      const part = body.subarray(0, stall.bytes);
      entry.sent += part.length;
      return res.write(part, () => stall.onStalled && stall.onStalled());
    }
    const drop = this.takeFault('dropAfter', e.name);
    if (drop) {
      const part = body.subarray(0, drop.bytes);
      entry.sent += part.length;
      return res.write(part, () => res.destroy());
    }
    entry.sent += body.length;
    res.end(body);
  }
}

module.exports = {FakeHub, readTree, sha256, gitSha1};

/* Stand-alone: node fake_hub.js ORG/NAME=DIR ... → prints the two ports. */
if (require.main === module) {
  const hub = new FakeHub();
  for (const a of process.argv.slice(2)) {
    const [id, dir] = a.split('=');
    hub.addRepo(id, {main: readTree(dir)});
  }
  hub.start().then(() => console.log(`hub ${hub.port} storage ${hub.storagePort}`));
}
