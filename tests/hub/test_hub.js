'use strict';
/*
 * test_hub.js — `cinfer pull`, list, rm and name resolution against the fake
 * hub (fake_hub.js, same process). usage: node test_hub.js CINFER TOKENIZER_DIR WORK_DIR [CASE...]
 *
 * Expectations come from outside cinfer: file bytes are compared with the
 * source files, blob names with node:crypto's SHA-256 / git SHA-1, the cache
 * layout with the one huggingface_hub documents, and what was fetched with
 * the fake hub's request log. All traffic stays on 127.0.0.1.
 */
const assert = require('node:assert/strict');
const {spawn} = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const {FakeHub, readTree, sha256, gitSha1} = require('./fake_hub.js');

const [CINFER, TOKDIR, WORK, ...ONLY] = process.argv.slice(2);
const TOKEN = 'hf_SeCrEtToKeN0123456789';

function run(args, env = {}, timeoutMs = 120000, onSpawn = null) {
  return new Promise((resolve) => {
    const clean = {...process.env};
    for (const k of Object.keys(clean))
      if (/^(HF_|HUGGING|MODELSCOPE|https?_proxy|HTTPS?_PROXY|ALL_PROXY|all_proxy)/.test(k)) delete clean[k];
    const child = spawn(CINFER, args, {env: {...clean, NO_PROXY: '*', no_proxy: '*', ...env}});
    let out = '', err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    if (onSpawn) onSpawn(child);
    child.on('close', (code, sig) => { clearTimeout(timer); resolve({code, sig, out, err}); });
  });
}

const rand = (n, seed) => crypto.createHash('sha256').update(String(seed)).digest().toString('hex').repeat(Math.ceil(n / 64)).slice(0, n);
const smallRepo = (tag) => [
  {name: 'config.json', data: Buffer.from(`{"model_type":"qwen3","tag":"${tag}"}`)},
  {name: 'model.safetensors', data: Buffer.from(rand(300000, 'st' + tag))},
  {name: 'tokenizer.json', data: Buffer.from(`{"tok":"${tag}"}`)},
  {name: 'README.md', data: Buffer.from('readme')},
  {name: 'original/consolidated.pth', data: Buffer.from(rand(5000, 'orig' + tag))},
  {name: 'pytorch_model.bin', data: Buffer.from(rand(5000, 'bin' + tag))},
];

let hub, n = 0;
const env = (name) => {
  const root = path.join(WORK, name);
  return {HOME: path.join(root, 'home'), HF_HOME: path.join(root, 'hf'), MODELSCOPE_CACHE: path.join(root, 'ms'),
          HF_ENDPOINT: hub.url, MODELSCOPE_DOMAIN: hub.url};
};
const repoDir = (e, id) => path.join(e.HF_HOME, 'hub', 'models--' + id.replace('/', '--'));
const reqs = (pred) => hub.log.filter(pred);
const mark = () => hub.log.length;
const since = (m) => hub.log.slice(m);
function sameTree(dir, files) {
  for (const f of files) assert.ok(Buffer.compare(fs.readFileSync(path.join(dir, f.name)), f.data) === 0, `${f.name} differs`);
}
function sanitizerClean(r, what) {
  assert.doesNotMatch(r.err, /ERROR: (Address|Leak)Sanitizer|runtime error:/, `${what}: sanitizer report`);
}
function ok(r, what) {
  sanitizerClean(r, what); assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.err}`); }
function fails(r, re, what) {
  sanitizerClean(r, what);
  assert.notEqual(r.code, 0, `${what}: expected a failure\n${r.out}`);
  assert.match(r.err, re, `${what}: message`);
}
/* No file below `dir` other than under the caches, and nothing named `x` outside. */
function noEscape(root) { assert.ok(!fs.existsSync(path.join(root, 'etc')), 'wrote outside the cache'); }

const CASES = {};
const lie = smallRepo('s').slice(0, 2);
const DUP = [{name: 'a.json', data: Buffer.from('{"same":1}')}, {name: 'b.json', data: Buffer.from('{"same":1}')},
             {name: 'model.safetensors', data: Buffer.from(rand(2000, 'dup'))}];

CASES.full_pull_then_run_offline = async () => {
  const e = env('full');
  const m = mark();
  const r = await run(['pull', 'Org/Tiny'], e);
  ok(r, 'pull');
  const repo = repoDir(e, 'Org/Tiny');
  const commit = fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8');
  assert.match(commit, /^[0-9a-f]{40}$/);
  const snap = path.join(repo, 'snapshots', commit);
  assert.equal(r.out.trim(), snap);
  const src = readTree(path.join(WORK, 'src-hf'));
  sameTree(snap, src);
  for (const f of src) { /* huggingface_hub's layout: relative links to blobs named by hash */
    const target = fs.readlinkSync(path.join(snap, f.name));
    const lfs = /\.safetensors$/.test(f.name) || f.data.length > 1024 * 1024;
    assert.equal(target, '../../blobs/' + (lfs ? sha256(f.data) : gitSha1(f.data)));
  }
  assert.deepEqual(fs.readdirSync(snap).sort(), src.map((f) => f.name).sort());
  assert.ok(!fs.readdirSync(path.join(repo, 'blobs')).some((b) => b.endsWith('.incomplete')));
  const gets = since(m).filter((x) => x.server === 'storage');
  assert.ok(gets.every((x) => x.auth === null), 'no token to storage');
  const m2 = mark();
  const again = await run(['pull', 'Org/Tiny'], e); /* everything cached: metadata only */
  ok(again, 'second pull');
  assert.deepEqual(since(m2).filter((x) => /\/resolve\/|\/blob\//.test(x.url)).map((x) => x.url), []);
  const m3 = mark();
  const gen = await run(['run', 'Org/Tiny', '-p', 'hi', '--max-tokens', '2'], {...e, HF_HUB_OFFLINE: '1'});
  ok(gen, 'run by name');
  const pullOff = await run(['pull', 'Org/Tiny'], {...e, HF_HUB_OFFLINE: '1'});
  ok(pullOff, 'offline pull of a cached model');
  assert.equal(since(m3).length, 0, 'offline touched the network');
  const list = await run(['list'], e);
  ok(list, 'list');
  assert.match(list.out, /Org\/Tiny\s+safetensors\s+0\.0\d GB\s+main @ [0-9a-f]{7}/);
};

CASES.run_with_pull_flag = async () => {
  const e = env('pullflag');
  fails(await run(['run', 'Org/Tiny', '-p', 'hi', '--max-tokens', '2'], e), /cinfer pull Org\/Tiny.*--pull/, 'not cached');
  ok(await run(['run', 'Org/Tiny', '-p', 'hi', '--max-tokens', '2', '--pull'], e), 'run --pull');
  assert.ok(fs.existsSync(path.join(repoDir(e, 'Org/Tiny'), 'refs', 'main')));
  /* a complete .incomplete (crash before the rename) is verified, not fetched again */
  const e2 = env('complete-partial');
  const file = smallRepo('r').find((f) => f.name === 'model.safetensors');
  const blobs = path.join(repoDir(e2, 'Org/Small'), 'blobs');
  fs.mkdirSync(blobs, {recursive: true});
  fs.writeFileSync(path.join(blobs, sha256(file.data) + '.incomplete'), file.data);
  const m = mark();
  ok(await run(['pull', 'Org/Small'], e2), 'pull');
  assert.equal(since(m).filter((x) => x.server === 'storage').length, 0);
  assert.ok(fs.existsSync(path.join(blobs, sha256(file.data))));
};

CASES.selection_skips_original_and_bin = async () => {
  const e = env('select');
  ok(await run(['pull', 'Org/Small'], e), 'pull');
  const snap = path.join(repoDir(e, 'Org/Small'), 'snapshots');
  const files = fs.readdirSync(path.join(snap, fs.readdirSync(snap)[0])).sort();
  assert.deepEqual(files, ['config.json', 'model.safetensors', 'tokenizer.json']);
  const e2 = env('select-include');
  ok(await run(['pull', 'Org/Small', '--include', '*.json', '--exclude', 'tok*'], e2), 'pull --include');
  const snap2 = path.join(repoDir(e2, 'Org/Small'), 'snapshots');
  assert.deepEqual(fs.readdirSync(path.join(snap2, fs.readdirSync(snap2)[0])), ['config.json']);
};

CASES.resume_after_cut = async () => {
  const e = env('resume');
  const file = smallRepo('r').find((f) => f.name === 'model.safetensors');
  hub.fault('dropAfter', 'model.safetensors', {bytes: 100000});
  const m = mark();
  const r = await run(['pull', 'Org/Small'], e);
  ok(r, 'pull with a cut');
  const got = since(m).filter((x) => x.server === 'storage');
  assert.equal(got.length, 2, 'one retry');
  assert.equal(got[0].range, null);
  assert.equal(got[1].range, 'bytes=100000-', 'resumed with Range');
  assert.equal(got[0].sent + got[1].sent, file.data.length, 'no byte fetched twice');
  assert.match(r.err, /retrying/);
  const snap = path.join(repoDir(e, 'Org/Small'), 'snapshots');
  sameTree(path.join(snap, fs.readdirSync(snap)[0]), [file]);
  /* an interrupted earlier run (Ctrl-C) left a partial blob: the next run continues it */
  const e2 = env('resume2');
  const blobs = path.join(repoDir(e2, 'Org/Small'), 'blobs');
  fs.mkdirSync(blobs, {recursive: true});
  fs.writeFileSync(path.join(blobs, sha256(file.data) + '.incomplete'), file.data.subarray(0, 123456));
  const m2 = mark();
  ok(await run(['pull', 'Org/Small'], e2), 'pull after a partial');
  const got2 = since(m2).filter((x) => x.server === 'storage');
  assert.equal(got2.length, 1);
  assert.equal(got2[0].range, 'bytes=123456-');
  assert.equal(got2[0].sent, file.data.length - 123456);
  assert.ok(Buffer.compare(fs.readFileSync(path.join(blobs, sha256(file.data))), file.data) === 0);
};

CASES.corrupt_byte_refetched = async () => {
  const e = env('corrupt');
  hub.fault('corrupt', 'model.safetensors');
  const m = mark();
  const r = await run(['pull', 'Org/Small'], e);
  ok(r, 'pull');
  assert.equal(since(m).filter((x) => x.server === 'storage').length, 2, 'fetched again');
  assert.match(r.err, /hash/);
  const file = smallRepo('r').find((f) => f.name === 'model.safetensors');
  assert.ok(Buffer.compare(fs.readFileSync(path.join(repoDir(e, 'Org/Small'), 'blobs', sha256(file.data))), file.data) === 0);
  /* a server that always lies: error, nothing placed, no ref */
  const e2 = env('corrupt2');
  hub.faults.push({kind: 'corrupt', file: 'model.safetensors', times: 2});
  const r2 = await run(['pull', 'Org/Small', '--retries', '0'], e2);
  fails(r2, /hash|checksum/, 'lying server');
  const repo = repoDir(e2, 'Org/Small');
  assert.ok(!fs.existsSync(path.join(repo, 'blobs', sha256(file.data))));
  assert.ok(!fs.existsSync(path.join(repo, 'refs', 'main')));
  fails(await run(['run', 'Org/Small', '-p', 'hi'], e2), /cinfer pull Org\/Small/, 'not resolvable');
};

CASES.ctrl_c_then_resume = async () => {
  const e = env('ctrlc');
  const file = smallRepo('r').find((f) => f.name === 'model.safetensors');
  let child;
  hub.fault('stall', 'model.safetensors', {bytes: 150000, onStalled: () => child.kill('SIGINT')});
  const r = await run(['pull', 'Org/Small'], e, 60000, (c) => (child = c));
  fails(r, /interrupted[\s\S]*run the same command again/, 'Ctrl-C');
  const part = path.join(repoDir(e, 'Org/Small'), 'blobs', sha256(file.data) + '.incomplete');
  const have = fs.existsSync(part) ? fs.statSync(part).size : 0;
  assert.ok(have <= 150000);
  assert.ok(!fs.existsSync(path.join(repoDir(e, 'Org/Small'), 'refs')), 'no ref after an interrupted pull');
  const m = mark();
  ok(await run(['pull', 'Org/Small'], e), 'resume');
  const got = since(m).filter((x) => x.server === 'storage');
  assert.equal(got.length, 1);
  assert.equal(got[0].range, have ? `bytes=${have}-` : null, 'continued where the partial file ends');
  assert.equal(got[0].sent, file.data.length - have);
  /* a huge Retry-After is capped (30 s) and Ctrl-C cuts the wait short */
  hub.fault('rateLimit', 'model.safetensors', {retryAfter: 3600});
  const r2 = await run(['pull', 'Org/Small'], env('ctrlc2'), 60000, (c) => {
    let text = '';
    c.stderr.on('data', (d) => { text += d; if (/retrying in 30\.0s/.test(text)) c.kill('SIGINT'); });
  });
  fails(r2, /HTTP 429; retrying in 30\.0s[\s\S]*interrupted/, 'capped Retry-After, then Ctrl-C');
};

CASES.identical_files = async () => {
  const e = env('dup');
  const m = mark();
  ok(await run(['pull', 'Org/Dup', '--connections', '4'], e), 'pull');
  const snap = path.join(repoDir(e, 'Org/Dup'), 'snapshots');
  sameTree(path.join(snap, fs.readdirSync(snap)[0]), DUP);
  assert.equal(since(m).filter((x) => /\/resolve\/.*\.json$/.test(x.url)).length, 1, 'one download for equal bytes');
  ok(await run(['pull', 'modelscope:Org/Dup', '--connections', '4'], e), 'pull modelscope');
  sameTree(path.join(e.MODELSCOPE_CACHE, 'models', 'Org', 'Dup'), DUP);
};

CASES.two_revisions_share_blobs = async () => {
  const e = env('revs');
  const m = mark();
  ok(await run(['pull', 'Org/Revs'], e), 'pull main');
  ok(await run(['pull', 'Org/Revs', '--revision', 'v2'], e), 'pull v2');
  const repo = repoDir(e, 'Org/Revs');
  const st = smallRepo('r').find((f) => f.name === 'model.safetensors');
  assert.equal(since(m).filter((x) => x.server === 'storage').length, 1, 'the shared blob was fetched once');
  assert.equal(fs.readdirSync(path.join(repo, 'snapshots')).length, 2);
  assert.deepEqual(fs.readdirSync(path.join(repo, 'refs')).sort(), ['main', 'v2']);
  assert.equal(fs.readdirSync(path.join(repo, 'blobs')).length, 4, '2 configs + 1 shared safetensors + 1 tokenizer');
  const rm = await run(['rm', 'Org/Revs', '--revision', 'v2'], e);
  ok(rm, 'rm v2');
  assert.deepEqual(fs.readdirSync(path.join(repo, 'refs')), ['main']);
  assert.ok(fs.existsSync(path.join(repo, 'blobs', sha256(st.data))), 'shared blob kept');
  assert.equal(fs.readdirSync(path.join(repo, 'blobs')).length, 3);
  const main = fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8');
  sameTree(path.join(repo, 'snapshots', main), smallRepo('r').slice(0, 3));
  ok(await run(['rm', 'Org/Revs'], e), 'rm all');
  assert.ok(!fs.existsSync(repo));
};

CASES.gguf_quant = async () => {
  const e = env('gguf');
  const m = mark();
  const r = await run(['pull', 'Org/Tiny-GGUF:q4_k_m'], e);
  ok(r, 'pull quant');
  assert.match(r.out.trim(), /\/Tiny-Q4_K_M\.gguf$/);
  const fetched = since(m).filter((x) => x.server === 'hub' && /resolve/.test(x.url)).map((x) => path.basename(x.url));
  assert.deepEqual(fetched, ['Tiny-Q4_K_M.gguf']);
  sameTree(path.dirname(r.out.trim()), [{name: 'Tiny-Q4_K_M.gguf', data: fs.readFileSync(path.join(WORK, 'src.gguf'))}]);
  ok(await run(['run', 'Org/Tiny-GGUF:Q4_K_M', '-p', 'hi', '--max-tokens', '2'], {...e, HF_HUB_OFFLINE: '1'}), 'run quant');
  const m2 = mark();
  const s = await run(['pull', 'Org/Tiny-GGUF:Q6_K'], e);
  ok(s, 'pull split');
  const split = since(m2).filter((x) => x.server === 'hub' && /resolve/.test(x.url)).map((x) => path.basename(x.url)).sort();
  assert.deepEqual(split, ['Tiny-Q6_K-00001-of-00002.gguf', 'Tiny-Q6_K-00002-of-00002.gguf']);
  assert.match(s.out.trim(), /Tiny-Q6_K-00001-of-00002\.gguf$/);
  fails(await run(['pull', 'Org/Tiny-GGUF:Q3_K_S'], e), /no GGUF file for quant 'Q3_K_S'/, 'missing quant');
};

CASES.modelscope = async () => {
  const e = env('ms');
  const r = await run(['pull', 'modelscope:Org/Tiny.Chat'], e);
  ok(r, 'pull');
  const dir = path.join(e.MODELSCOPE_CACHE, 'models', 'Org', 'Tiny___Chat');
  assert.equal(r.out.trim(), dir);
  sameTree(dir, readTree(path.join(WORK, 'src-hf')));
  const m = mark();
  ok(await run(['run', 'modelscope:Org/Tiny.Chat', '-p', 'hi', '--max-tokens', '2'], {...e, HF_HUB_OFFLINE: '1'}), 'run');
  ok(await run(['run', 'Org/Tiny.Chat', '-p', 'hi', '--max-tokens', '2'], e), 'run without prefix');
  assert.equal(since(m).length, 0);
  const e2 = env('ms2');
  ok(await run(['pull', 'Org/Tiny.Chat', '--source', 'modelscope', '--include', 'config.json'], e2), '--source');
  assert.ok(fs.existsSync(path.join(e2.MODELSCOPE_CACHE, 'models', 'Org', 'Tiny___Chat', 'config.json')));
  const list = await run(['list'], e);
  assert.match(list.out, /modelscope:Org\/Tiny___Chat/);
};

CASES.offline_never_touches_network = async () => {
  const e = {...env('offline'), HF_HUB_OFFLINE: '1'};
  const m = mark();
  fails(await run(['pull', 'Org/Small'], e), /HF_HUB_OFFLINE/, 'offline pull');
  const r = await run(['run', 'Org/Small', '-p', 'hi'], e);
  fails(r, /not in the model caches.*'cinfer pull Org\/Small'/, 'not cached');
  assert.equal(since(m).length, 0);
};

CASES.hand_built_hf_cache = async () => {
  /* The layout huggingface_hub documents (Manage the cache → cache structure), built by hand. */
  const e = env('hand');
  const repo = path.join(e.HF_HOME, 'hub', 'models--Hand--Made');
  const commit = 'a'.repeat(40);
  for (const d of ['blobs', 'refs', 'snapshots/' + commit]) fs.mkdirSync(path.join(repo, d), {recursive: true});
  for (const f of readTree(path.join(WORK, 'src-hf'))) {
    const etag = /\.safetensors$/.test(f.name) ? sha256(f.data) : gitSha1(f.data);
    fs.writeFileSync(path.join(repo, 'blobs', etag), f.data);
    fs.symlinkSync('../../blobs/' + etag, path.join(repo, 'snapshots', commit, f.name));
  }
  fs.writeFileSync(path.join(repo, 'refs', 'main'), commit);
  const m = mark();
  ok(await run(['run', 'Hand/Made', '-p', 'hi', '--max-tokens', '2'], e), 'run from a foreign cache');
  const p = await run(['pull', 'Hand/Made'], {...e, HF_HUB_OFFLINE: '1'});
  ok(p, 'offline pull');
  assert.equal(p.out.trim(), path.join(repo, 'snapshots', commit));
  assert.equal(since(m).length, 0);
  /* HF_HUB_CACHE points at the hub folder directly */
  ok(await run(['run', 'Hand/Made', '-p', 'hi', '--max-tokens', '1'],
               {...e, HF_HOME: '/nonexistent', HF_HUB_CACHE: path.join(e.HF_HOME, 'hub')}), 'HF_HUB_CACHE');
};

CASES.gated_token = async () => {
  const e = env('gated');
  const m = mark();
  const r = await run(['pull', 'Org/Gated'], e);
  fails(r, /401.*gated or private.*HF_TOKEN/, 'no token');
  const r2 = await run(['pull', 'Org/Gated'], {...e, HF_TOKEN: TOKEN});
  ok(r2, 'with HF_TOKEN');
  for (const x of [r, r2]) assert.ok(!(x.out + x.err).includes(TOKEN), 'token printed');
  const after = since(m);
  assert.ok(after.some((x) => x.server === 'hub' && x.auth === `Bearer ${TOKEN}`));
  assert.ok(after.filter((x) => x.server === 'storage').every((x) => x.auth === null), 'token sent to storage');
  const e2 = env('gated-file');
  fs.mkdirSync(e2.HF_HOME, {recursive: true});
  fs.writeFileSync(path.join(e2.HF_HOME, 'token'), TOKEN + '\n');
  ok(await run(['pull', 'Org/Gated'], e2), 'token file');
  const bad = await run(['pull', 'Org/Gated'], {...env('gated-bad'), HF_TOKEN: 'hf_wrong'});
  fails(bad, /token .* was refused/, 'wrong token');
  assert.ok(!bad.err.includes('hf_wrong'));
};

CASES.rate_limit_retry_after = async () => {
  const e = env('429');
  hub.fault('rateLimit', 'api');
  hub.fault('rateLimit', 'config.json', {retryAfter: 1});
  const m = mark();
  const r = await run(['pull', 'Org/Small'], e);
  ok(r, 'pull');
  assert.match(r.err, /config\.json: HTTP 429; retrying in 1\.0s/);
  assert.equal(since(m).filter((x) => x.status === 429).length, 2);
  hub.faults.push({kind: 'rateLimit', file: 'config.json', times: 3, retryAfter: 1});
  const r2 = await run(['pull', 'Org/Small', '--retries', '1'], env('429b'));
  fails(r2, /HTTP 429/, 'bounded retries');
  hub.faults = hub.faults.filter((f) => f.times > 0 && (f.times = 0));
};

CASES.bad_names = async () => {
  const e = env('names');
  const m = mark();
  for (const bad of ['../etc/x', '/abs/x', 'Org/na me', 'Org/..', 'Org/a..b', '..\\x/y', 'Org/x:Q4;rm', 'a/b/c'])
    fails(await run(['pull', bad], e), /not a model name|quant tag|ORG\/NAME/, `name ${bad}`);
  fails(await run(['pull', 'Org/Small', '--revision', '../x'], e), /not a revision/, 'revision');
  assert.equal(since(m).length, 0, 'bad names reached the network');
  fails(await run(['pull', 'Org/Missing'], e), /404/, 'missing repo');
  noEscape(WORK);
};

CASES.hostile_hub = async () => {
  const root = path.join(WORK, 'hostile');
  for (const id of ['Evil/DotDot', 'Evil/Abs', 'Evil/Backslash']) {
    const e = env('hostile-' + id.split('/')[1]);
    const m = mark();
    fails(await run(['pull', id], e), /not a plain relative path/, id);
    assert.equal(since(m).filter((x) => /resolve/.test(x.url)).length, 0, `${id}: fetched`);
  }
  noEscape(WORK);
  const e = env('hostile-size');
  fails(await run(['pull', 'Evil/Size', '--retries', '0'], e), /more bytes than the hub declared/, 'size lie');
  const blobs = fs.readdirSync(path.join(repoDir(e, 'Evil/Size'), 'blobs'));
  assert.ok(!blobs.some((b) => b.startsWith(sha256(lie[1].data))), 'the oversized file was kept');
  assert.ok(!fs.existsSync(path.join(repoDir(e, 'Evil/Size'), 'refs')));
  const e2 = env('hostile-endless');
  hub.fault('endless', 'model.safetensors');
  const t = await run(['pull', 'Org/Small', '--retries', '0'], e2, 60000);
  fails(t, /more bytes than the hub declared/, 'endless body');
  assert.equal(t.sig, null);
  fails(await run(['pull', 'Evil/Etag'], env('hostile-etag')), /ETag .* is not the hash/, 'etag lie');
  hub.fault('redirect', 'model.safetensors', {to: 'file:///etc/passwd'});
  fails(await run(['pull', 'Org/Small'], env('hostile-redirect')), /bad Location|http or https/, 'file redirect');
  /* a planted symlink inside the cache must not lead writes outside */
  const e3 = env('hostile-link');
  const outside = path.join(root, 'outside');
  fs.mkdirSync(outside, {recursive: true});
  const repo = repoDir(e3, 'Org/Small');
  fs.mkdirSync(path.join(repo, 'snapshots'), {recursive: true});
  const commit = hub.repos.get('Org/Small').commits.main.commit;
  fs.symlinkSync(outside, path.join(repo, 'snapshots', commit));
  fails(await run(['pull', 'Org/Small'], e3), /not a plain folder/, 'symlinked snapshot');
  assert.deepEqual(fs.readdirSync(outside), []);
};

async function main() {
  fs.mkdirSync(WORK, {recursive: true});
  const mk = async (args) => ok(await run(['make-test-model', ...args, '--shape', 'tiny', '--dtype', 'bf16', '--tokenizer', TOKDIR]), 'make-test-model');
  if (!fs.existsSync(path.join(WORK, 'src-hf', 'config.json'))) await mk([path.join(WORK, 'src-hf'), '--format', 'hf', '--shards', '2']);
  if (!fs.existsSync(path.join(WORK, 'src.gguf'))) await mk([path.join(WORK, 'src.gguf'), '--format', 'gguf']);
  const hf = readTree(path.join(WORK, 'src-hf'));
  const gguf = fs.readFileSync(path.join(WORK, 'src.gguf'));
  hub = await new FakeHub().start();
  hub.addRepo('Org/Tiny', {main: hf});
  hub.addRepo('Org/Tiny.Chat', {master: hf});
  hub.addRepo('Org/Small', {main: smallRepo('r')});
  const v2 = smallRepo('r');
  v2[0] = {name: 'config.json', data: Buffer.from('{"model_type":"qwen3","tag":"v2"}')};
  hub.addRepo('Org/Revs', {main: smallRepo('r'), v2});
  hub.addRepo('Org/Dup', {main: DUP, master: DUP});
  hub.addRepo('Org/Gated', {main: smallRepo('g')}, {gated: true, token: TOKEN});
  const half = gguf.length >> 1;
  hub.addRepo('Org/Tiny-GGUF', {main: [
    {name: 'README.md', data: Buffer.from('gguf repo')},
    {name: 'Tiny-Q4_K_M.gguf', data: gguf},
    {name: 'Tiny-UD-Q4_K_M.gguf', data: Buffer.from(rand(1000, 'ud'))},
    {name: 'Tiny-Q8_0.gguf', data: Buffer.from(rand(1000, 'q8'))},
    {name: 'Tiny-Q6_K-00001-of-00002.gguf', data: gguf.subarray(0, half)},
    {name: 'Tiny-Q6_K-00002-of-00002.gguf', data: gguf.subarray(half)},
  ]});
  const evil = (name) => ({rfilename: name, size: 4, blobId: 'b'.repeat(40)});
  hub.addRepo('Evil/DotDot', {main: smallRepo('e').slice(0, 1)}, {extra: [evil('../../etc/x')]});
  hub.addRepo('Evil/Abs', {main: smallRepo('e').slice(0, 1)}, {extra: [evil('/etc/x.json')]});
  hub.addRepo('Evil/Backslash', {main: smallRepo('e').slice(0, 1)}, {extra: [evil('a\\..\\..\\x.json')]});
  hub.addRepo('Evil/Size', {main: lie}, {overrides: {'model.safetensors': {lfs: {sha256: sha256(lie[1].data), size: 1000}}}});
  hub.addRepo('Evil/Etag', {main: smallRepo('t').slice(0, 2)}, {headers: {'model.safetensors': {'X-Linked-Etag': '"' + 'c'.repeat(64) + '"'}}});
  let failed = 0;
  try {
    for (const [name, fn] of Object.entries(CASES)) {
      if (ONLY.length && !ONLY.includes(name)) continue;
      n++;
      try {
        await fn();
        console.log(`ok ${n} - ${name}`);
      } catch (e) {
        failed++;
        console.log(`not ok ${n} - ${name}\n  ${String(e.stack || e).split('\n').join('\n  ')}`);
      }
    }
  } finally {
    hub.stop();
  }
  console.log(failed ? `${failed} of ${n} failed` : `all ${n} passed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.error(e); if (hub) hub.stop(); process.exit(1); });
