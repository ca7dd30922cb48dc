// Writes fixtures/channel-flow-sample/: a message flow in the format tests/flow.spec.ts runs
// (steps.json + TON Connect sendTransaction requests), made with the TS wrappers, so the flow
// runner is exercised before the Rust side writes fixtures/channel-flow-rust/.
//   npm run flow-sample
// Channel A: deploy + 10 TON deposit, the payee closes with promise #3 (3.25 TON).
// Channel B (same parties, short expiry): deploy + 2 TON, the payer's close with a forged
// promise is refused (101), the payer closes after the expiry with old promise #1, the payee
// disputes with #2, a third address finishes after the window.
require('./ts-require');
const fs = require('fs');
const path = require('path');
const { Address, beginCell, storeStateInit, toNano } = require('@ton/core');
const { keyPairFromSeed, sha256_sync } = require('@ton/crypto');
const ch = require('../wrappers/Channel.ts');
const { compileTolk } = require('../wrappers/compile.ts');

const OUT = process.argv[2] || path.join(__dirname, '..', 'fixtures', 'channel-flow-sample');
const T0 = 1_800_000_000;
const GAS = toNano('0.05'); // attached to every message for gas; the rest goes to the payer at the end

// plain accounts (no contract): the sandbox accepts internal messages from any address
const account = (tag) => new Address(0, sha256_sync(`silk flow sample ${tag}`));
const payer = account('payer');
const payee = account('payee');
const third = account('third');
const payerKey = keyPairFromSeed(sha256_sync('silk flow sample payer key'));
const otherKey = keyPairFromSeed(sha256_sync('silk flow sample not the payer'));

const boc64 = (c) => c.toBoc().toString('base64');
const signed = (channelId, seqno, amount, key = payerKey) => {
    const promise = ch.promiseCell(channelId, seqno, amount);
    return { promise, signature: ch.signPromise(promise, key.secretKey) };
};

(async () => {
    const code = await compileTolk('channel');
    const channel = (nonce, expiry, disputeWindow) => {
        const channelId = BigInt('0x' + sha256_sync(Buffer.concat([payerKey.publicKey, payee.hash, Buffer.from(nonce)])).toString('hex'));
        const c = ch.Channel.createFromConfig({ channelId, payer, payerKey: payerKey.publicKey, payee, disputeWindow, expiry }, code);
        return { channelId, address: c.address, init: c.init };
    };
    const A = channel('sample-a', T0 + 86400, 3600);
    const B = channel('sample-b', T0 + 3600, 600);

    const files = {};
    const steps = [];
    // one step = one request file with one message; `to` is written in the form named (wallets see all three)
    const step = (name, from, file, now, exit, to, amount, body, init) => {
        const m = { address: to, amount: amount.toString(), payload: boc64(body) };
        if (init) m.stateInit = boc64(beginCell().store(storeStateInit(init)).endCell());
        files[file] = { validUntil: now + 300, messages: [m] };
        steps.push({ name, from: from.toRawString(), request: file, now, exit });
    };
    const nonBounceable = (a) => a.toString({ urlSafe: true, bounceable: false }); // deploys: TON Connect habit
    const bounceable = (a) => a.toString({ urlSafe: true, bounceable: true });

    const depA = toNano('10');
    step('open channel A (deploy + 10 TON)', payer, 'open-a.json', T0, 0,
        nonBounceable(A.address), depA + ch.DEPOSIT_GAS + GAS, ch.depositBody(depA), A.init);
    const paidA = toNano('3.25');
    step('payee closes A with promise #3', payee, 'close-a.json', T0 + 600, 0,
        bounceable(A.address), GAS, ch.payeeCloseBody(signed(A.channelId, 3, paidA)));

    const depB = toNano('2');
    step('open channel B (deploy + 2 TON)', payer, 'open-b.json', T0 + 700, 0,
        nonBounceable(B.address), depB + ch.DEPOSIT_GAS + GAS, ch.depositBody(depB), B.init);
    step('payer closes B with a forged promise (refused)', payer, 'forged-close-b.json', T0 + 3600, ch.CHANNEL_ERR.badSignature,
        B.address.toRawString(), GAS, ch.payerStartCloseBody(signed(B.channelId, 1, toNano('0.1'), otherKey)));
    step('payer closes B with old promise #1', payer, 'start-close-b.json', T0 + 3610, 0,
        bounceable(B.address), GAS, ch.payerStartCloseBody(signed(B.channelId, 1, toNano('0.5'))));
    const paidB = toNano('1.5');
    step('payee disputes B with promise #2', payee, 'dispute-b.json', T0 + 3900, 0,
        B.address.toRawString(), GAS, ch.disputeBody(signed(B.channelId, 2, paidB)));
    step('third address finishes B', third, 'finish-b.json', T0 + 3610 + 600, 0,
        nonBounceable(B.address), GAS, ch.finishBody());

    const expectCh = (c, deposit, paid) => ({
        address: c.address.toRawString(), payer: payer.toRawString(), payee: payee.toRawString(),
        deposit: deposit.toString(), paid: paid.toString(),
    });
    fs.mkdirSync(OUT, { recursive: true });
    for (const [file, req] of Object.entries(files)) {
        fs.writeFileSync(path.join(OUT, file), JSON.stringify(req, null, 2) + '\n');
    }
    const flow = { steps, expect: { channels: [expectCh(A, depA, paidA), expectCh(B, depB, paidB)] } };
    fs.writeFileSync(path.join(OUT, 'steps.json'), JSON.stringify(flow, null, 2) + '\n');
    console.log(`wrote ${steps.length} steps to ${OUT}`);
})().catch((e) => {
    console.error(e);
    process.exit(1);
});
