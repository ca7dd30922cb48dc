// silk's verification page: the browser challenges the enclave with its own nonce,
// verifies the evidence with silk's verifier compiled to WebAssembly, under the policy the
// proxy was started with, then seals prompts to the attested key and opens the answers.
// No framework and no external resources; text is only ever set as textContent.
//
// The page's state is mirrored on <body data-state="verifying|accepted|refused|error">
// and <body data-answer="sending|streaming|done|error"> for tests and scripts.

// The verifier is imported when the page runs, so that a failure to load it is shown
// on the page rather than stopping this script.
let wasm = null;

const WASM_URL = '/verify/pkg/silk_verifier_wasm_bg.wasm';
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ''));
  return e;
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function sha256Hex(bytes) {
  return hex(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)));
}

/// An error answer of the proxy or the enclave (OpenAI-shaped JSON) in words.
async function errorText(response) {
  const text = await response.text();
  try {
    const e = JSON.parse(text).error;
    if (e && e.message) return `${e.message} (${e.code || response.status})`;
  } catch (_) { /* not JSON */ }
  return `HTTP ${response.status}: ${text.slice(0, 300)}`;
}

function setSummary(kind, title, text) {
  const s = $('summary');
  s.className = `summary ${kind}`;
  $('summary-title').textContent = title;
  $('summary-text').textContent = text;
  document.body.dataset.state = kind;
}

// ---- the verdict -------------------------------------------------------------------

function renderChecks(verdict) {
  const body = $('checks').tBodies[0];
  body.replaceChildren();
  for (const c of verdict.checks || []) {
    const pass = c.outcome && c.outcome.status === 'pass';
    const result = el('td', { class: 'result' }, pass ? '✔ pass' : '✗ FAIL');
    if (!pass && c.outcome && c.outcome.reason) {
      result.append(el('span', { class: 'reason' }, c.outcome.reason));
    }
    body.append(el('tr', { class: pass ? 'check pass' : 'check fail', 'data-check': c.name },
      el('td', { class: 'name' }, c.name),
      el('td', { class: 'mono' }, c.expected),
      el('td', { class: 'mono' }, c.found),
      result));
  }
  const warnings = $('warnings');
  warnings.replaceChildren(...(verdict.warnings || []).map((w) => el('li', {}, `warning: ${w}`)));
}

const FACT_GROUPS = [
  ['Hardware', (n) => !/^(gpu|measurement|image|model|host_data|launch)/.test(n)],
  ['Image and measurement', (n) => /^(measurement|image|host_data|launch)/.test(n)],
  ['Model', (n) => /^model/.test(n)],
  ['GPU', (n) => /^gpu/.test(n)],
];

const CLAIM_GROUP = {
  image_digest: 'Image and measurement',
  software_version: 'Image and measurement',
  model: 'Model',
  gpu_nonce: 'GPU',
  hpke_public_key: 'Keys the enclave holds',
  tls_spki_sha256: 'Keys the enclave holds',
  receipt_public_key: 'Keys the enclave holds',
  payout_address: 'Keys the enclave holds',
  created_at: 'Freshness',
  challenge: 'Freshness',
};

function renderFacts(result) {
  const groups = new Map();
  const add = (group, name, value) => {
    if (value === undefined || value === null || value === '') return;
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push([name, typeof value === 'object' ? JSON.stringify(value) : String(value)]);
  };
  const v = result.verdict || {};
  add('Hardware', 'platform', v.platform);
  add('Hardware', 'evidence', v.evidence);
  add('Hardware', 'simulated', v.simulated ? 'yes: silk\'s simulated platform, not hardware' : 'no');
  const shown = new Set();
  for (const f of v.facts || []) {
    const claim = f.name.startsWith('claims.') ? f.name.slice(7) : null;
    const group = claim !== null
      ? CLAIM_GROUP[claim] || 'Claims'
      : (FACT_GROUPS.find(([, test]) => test(f.name)) || ['Hardware'])[0];
    add(group, f.name, f.value);
    shown.add(f.name);
  }
  for (const [name, value] of Object.entries(result.claims || {})) {
    if (!shown.has(`claims.${name}`)) add(CLAIM_GROUP[name] || 'Claims', `claims.${name}`, value);
  }
  if (!groups.has('GPU')) add('GPU', 'GPUs', 'none in this evidence');
  const box = $('facts');
  box.replaceChildren();
  for (const [group, rows] of groups) {
    const dl = el('dl');
    for (const [name, value] of rows) dl.append(el('dt', {}, name), el('dd', {}, value));
    box.append(el('section', { 'data-group': group }, el('h3', {}, group), dl));
  }
}

// ---- verification --------------------------------------------------------------------

let session = null; // { hpkePublicKey, claimsDigest } once accepted

async function loadVerifier(info) {
  const fetched = await fetch(WASM_URL);
  if (!fetched.ok) throw new Error(`loading the verifier: HTTP ${fetched.status}`);
  const bytes = new Uint8Array(await fetched.arrayBuffer());
  const digest = await sha256Hex(bytes);
  $('wasm-sha256').textContent = digest;
  $('wasm-sha256-proxy').textContent = info.wasm_sha256 === digest
    ? `${info.wasm_sha256} (same)` : `${info.wasm_sha256} (DIFFERENT from what your browser loaded)`;
  wasm = await import('/verify/pkg/silk_verifier_wasm.js');
  await wasm.default({ module_or_path: bytes });
  $('wasm-version').textContent = wasm.version();
}

async function verify() {
  document.body.dataset.state = 'verifying';
  const infoResponse = await fetch('/verify/api/info', { cache: 'no-store' });
  if (!infoResponse.ok) throw new Error(`the proxy's page info: ${await errorText(infoResponse)}`);
  const info = await infoResponse.json();
  $('policy').textContent = info.policy;
  $('target').textContent = info.target;
  await loadVerifier(info);
  if (!info.relay) {
    setSummary('error', 'Cannot verify from here', info.relay_unavailable);
    return;
  }

  const nonce = new Uint8Array(32);
  crypto.getRandomValues(nonce);
  const nonceHex = hex(nonce);
  $('nonce').textContent = nonceHex;
  const evidence = await fetch(`/verify/api/attestation?nonce=${nonceHex}`, { cache: 'no-store' });
  if (!evidence.ok) throw new Error(`fetching the evidence: ${await errorText(evidence)}`);
  const bundle = new Uint8Array(await evidence.arrayBuffer());
  const now = new Date().toISOString();
  $('verified-at').textContent = now;

  const result = wasm.attest(bundle, info.policy, nonceHex, now);
  const verdict = result.verdict || {};
  renderChecks(verdict);
  renderFacts(result);
  $('simulated').hidden = !result.simulated;
  document.body.dataset.simulated = result.simulated ? 'true' : 'false';

  const checks = verdict.checks || [];
  const failed = checks.filter((c) => !(c.outcome && c.outcome.status === 'pass'));
  let refusal = null;
  if (result.accepted) {
    // A sealed request is bound to the enclave's base claims (those without a challenge):
    // fetch and verify them too, and check that they are the same enclave's.
    refusal = await verifyBase(info.policy, result.claims);
  }
  if (result.accepted && !refusal) {
    const sim = result.simulated ? ' SIMULATED evidence: not hardware.' : '';
    setSummary('accepted', result.simulated ? 'Accepted (SIMULATED)' : 'Accepted',
      `All ${checks.length} checks of the evidence passed under the policy below, and its ` +
      `base claims are the same enclave's: it runs the image and model shown, and holds ` +
      `the key your prompt will be sealed to.${sim}`);
    $('send').disabled = false;
  } else if (refusal) {
    setSummary('refused', 'Refused: do not send this enclave anything', refusal);
  } else {
    const names = failed.map((c) => c.name).join(', ');
    setSummary('refused', 'Refused: do not send this enclave anything',
      `${failed.length} of ${checks.length} checks failed: ${names}.` +
      (info.proxy_check && !info.proxy_check.accepted
        ? ' The proxy refused it too and relays no prompt.' : ''));
  }
}

/// Verifies the enclave's base evidence and keeps its key and claims digest for sealing;
/// returns why it is refused, or null.
async function verifyBase(policy, fresh) {
  const response = await fetch('/verify/api/attestation', { cache: 'no-store' });
  if (!response.ok) return `fetching the base evidence: ${await errorText(response)}`;
  const bytes = new Uint8Array(await response.arrayBuffer());
  const base = wasm.attest(bytes, policy, '', new Date().toISOString());
  if (!base.accepted) {
    const names = (base.verdict.checks || [])
      .filter((c) => !(c.outcome && c.outcome.status === 'pass')).map((c) => c.name);
    return `the base evidence (the claims prompts are sealed to) fails: ${names.join(', ')}`;
  }
  const same = ['hpke_public_key', 'tls_spki_sha256', 'image_digest', 'model']
    .every((k) => base.claims && fresh && base.claims[k] === fresh[k]);
  if (!same) {
    addRow('claims.same_enclave', 'the base evidence comes from the enclave that answered the nonce',
      'another enclave', 'base and fresh evidence come from different enclaves');
    return 'claims.same_enclave failed: the base and fresh evidence come from different enclaves';
  }
  addRow('claims.same_enclave', 'the base evidence comes from the enclave that answered the nonce',
    'same HPKE key, TLS key, image and model', null);
  session = { hpkePublicKey: base.hpkePublicKey, claimsDigest: base.claimsDigest };
  return null;
}

/// A check the page makes itself (beside the verifier's), as a row.
function addRow(name, expected, found, failure) {
  const result = el('td', { class: 'result' }, failure ? '✗ FAIL' : '✔ pass');
  if (failure) result.append(el('span', { class: 'reason' }, failure));
  $('checks').tBodies[0].append(el('tr', { class: failure ? 'check fail' : 'check pass', 'data-check': name },
    el('td', { class: 'name' }, name), el('td', { class: 'mono' }, expected),
    el('td', { class: 'mono' }, found), result));
}

// ---- a sealed prompt --------------------------------------------------------------

/// Splits server-sent events out of `buffer`; returns [events' data, the rest].
function takeEvents(buffer) {
  const events = [];
  let at;
  while ((at = buffer.indexOf('\n\n')) >= 0) {
    const block = buffer.slice(0, at);
    buffer = buffer.slice(at + 2);
    const data = block.split('\n').filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).trimStart()).join('\n');
    if (data) events.push(data);
  }
  return [events, buffer];
}

async function send(prompt, maxTokens, temperature) {
  const out = $('answer');
  const status = $('answer-status');
  out.replaceChildren();
  out.classList.remove('error');
  document.body.dataset.answer = 'sending';
  status.textContent = 'Sealing in the page and sending…';
  const body = new TextEncoder().encode(JSON.stringify({
    messages: [{ role: 'user', content: prompt }],
    max_tokens: maxTokens,
    temperature,
    stream: true,
  }));
  const sealed = new wasm.SealedRequest(session.hpkePublicKey, session.claimsDigest, body);
  body.fill(0);
  const response = await fetch('/verify/api/sealed', {
    method: 'POST',
    headers: { 'Content-Type': 'application/vnd.silk.sealed-request' },
    body: sealed.bytes(),
    cache: 'no-store',
  });
  const kind = response.headers.get('Content-Type') || '';
  if (!kind.startsWith('application/vnd.silk.sealed-stream')) {
    throw new Error(`the enclave did not answer with a sealed stream: ${await errorText(response)}`);
  }
  document.body.dataset.answer = 'streaming';
  status.textContent = `Streaming (HTTP ${response.status}), opened in the page…`;
  const reader = response.body.getReader();
  let text = '';
  let sse = '';
  let apiError = null;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    for (const piece of sealed.push(value)) {
      if (response.status !== 200) { apiError = (apiError || '') + piece; continue; }
      let events;
      [events, sse] = takeEvents(sse + piece);
      for (const data of events) {
        if (data === '[DONE]') continue;
        const event = JSON.parse(data);
        if (event.error) throw new Error(`the enclave: ${event.error.message}`);
        const choice = (event.choices || [])[0];
        const delta = choice && choice.delta && choice.delta.content;
        if (delta) { text += delta; out.textContent = text; }
      }
    }
  }
  sealed.finish(); // throws when the stream was cut short or altered
  if (apiError !== null) {
    let message = apiError;
    try { message = JSON.parse(apiError).error.message; } catch (_) { /* as is */ }
    throw new Error(`the enclave refused the request (HTTP ${response.status}): ${message}`);
  }
  status.textContent = 'Done: every chunk was opened and authenticated in the page.';
  document.body.dataset.answer = 'done';
}

$('prompt-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const prompt = $('prompt').value;
  const maxTokens = Math.max(1, Math.min(4096, parseInt($('max-tokens').value, 10) || 64));
  const temperature = Math.max(0, Math.min(2, parseFloat($('temperature').value) || 0));
  if (!session || !prompt) return;
  $('send').disabled = true;
  send(prompt, maxTokens, temperature).catch((e) => {
    $('answer-status').textContent = '';
    $('answer').append(el('span', { class: 'error' }, `\n${e.message || e}`));
    document.body.dataset.answer = 'error';
  }).finally(() => { $('send').disabled = false; });
});

verify().catch((e) => {
  setSummary('error', 'Could not verify', String(e.message || e));
});
