// Opens silk proxy's /verify page in Debian's chromium (headless, driven by
// playwright-core; no browser is downloaded) and reports what the page shows as JSON on
// stdout: the summary, each check row with its class and computed colour, the SIMULATED
// banner, and, when a prompt is given, the answer the page streamed.
//
// usage: node verify_page.mjs --url http://ADDR/verify --user-data-dir DIR
//          [--screenshot FILE.png] [--prompt TEXT] [--max-tokens N] [--chromium PATH]

import { chromium } from 'playwright-core';

function args(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) {
      throw new Error(`bad argument ${argv[i]}`);
    }
    out[argv[i].slice(2)] = argv[i + 1];
  }
  return out;
}

const opts = args(process.argv.slice(2));
if (!opts.url || !opts['user-data-dir']) throw new Error('--url and --user-data-dir are required');

const context = await chromium.launchPersistentContext(opts['user-data-dir'], {
  executablePath: opts.chromium || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  viewport: { width: 1280, height: 900 },
});

const report = { console: [], pageErrors: [], cspViolations: [], requests: [] };
try {
  const page = context.pages()[0] || await context.newPage();
  page.on('console', (m) => report.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => report.pageErrors.push(String(e)));
  page.on('request', (r) => report.requests.push(`${r.method()} ${r.url()}`));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp = (window.__csp || []).concat(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });

  const started = Date.now();
  const response = await page.goto(opts.url, { waitUntil: 'load' });
  report.status = response.status();
  report.csp = response.headers()['content-security-policy'] || null;
  await page.waitForFunction(
    () => ['accepted', 'refused', 'error'].includes(document.body.dataset.state),
    null, { timeout: 60000 }).catch((e) => { report.waitError = String(e); });
  report.verifiedMs = Date.now() - started;

  Object.assign(report, await page.evaluate(() => {
    const text = (id) => document.getElementById(id).textContent;
    const rows = Array.from(document.querySelectorAll('#checks tbody tr')).map((tr) => ({
      name: tr.querySelector('td.name').textContent,
      class: tr.className,
      expected: tr.children[1].textContent,
      found: tr.children[2].textContent,
      result: tr.querySelector('td.result').textContent,
      color: getComputedStyle(tr.querySelector('td.name')).color,
    }));
    const banner = document.getElementById('simulated');
    return {
      state: document.body.dataset.state,
      simulated: document.body.dataset.simulated === 'true',
      simulatedBannerVisible: !banner.hidden && banner.offsetHeight > 0,
      simulatedBannerText: banner.textContent.trim(),
      summaryTitle: text('summary-title'),
      summaryText: text('summary-text'),
      summaryColor: getComputedStyle(document.getElementById('summary-title')).color,
      policy: text('policy'),
      wasmSha256: text('wasm-sha256'),
      wasmSha256Proxy: text('wasm-sha256-proxy'),
      facts: Array.from(document.querySelectorAll('#facts section')).map((s) => ({
        group: s.dataset.group,
        items: Array.from(s.querySelectorAll('dt')).map((dt) => [dt.textContent, dt.nextElementSibling.textContent]),
      })),
      rows,
      sendEnabled: !document.getElementById('send').disabled,
    };
  }));

  if (opts.prompt !== undefined && report.state === 'accepted') {
    await page.fill('#prompt', opts.prompt);
    await page.fill('#max-tokens', opts['max-tokens'] || '48');
    // Watch the answer grow while it streams: more than one distinct length means the
    // page rendered it piece by piece, not at the end.
    await page.evaluate(() => {
      window.__lengths = [];
      new MutationObserver(() => {
        window.__lengths.push(document.getElementById('answer').textContent.length);
      }).observe(document.getElementById('answer'), { childList: true, characterData: true, subtree: true });
    });
    const sent = Date.now();
    await page.click('#send');
    await page.waitForFunction(() => document.getElementById('answer').textContent.length > 0,
      null, { timeout: 240000 }).catch(() => {});
    report.firstTextMs = Date.now() - sent;
    await page.waitForFunction(
      () => ['done', 'error'].includes(document.body.dataset.answer), null, { timeout: 240000 })
      .catch((e) => { report.waitError = String(e); });
    report.answerMs = Date.now() - sent;
    Object.assign(report, await page.evaluate(() => ({
      answerState: document.body.dataset.answer,
      answer: document.getElementById('answer').textContent,
      answerStatus: document.getElementById('answer-status').textContent,
      answerLengths: window.__lengths,
    })));
  }
  report.cspViolations = await page.evaluate(() => window.__csp || []);
  if (opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true });
} finally {
  await context.close();
}
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
