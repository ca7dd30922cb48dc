// Cross-language: promises built and signed by the Rust code (fixtures/promises-rust.json,
// which `cargo test -p silk-ledger` checks is exactly what silk-ledger signs today) must be
// accepted by the channel contract, and every single-bit flip refused. SILK_PROMISES_FIXTURE
// names another file (fixtures/promises.json is a sample signed with @ton/crypto).
// Skipped cleanly when the file is absent. Format: a JSON list of
//   { channel_id: hex (32 bytes), seqno: decimal string or number, amount: nanotons, decimal
//     string or number, payer_pubkey: hex (32 bytes), signature: hex (64 bytes) }
// (other fields are ignored). Regenerate the sample: node scripts/make-fixture.js
import { Blockchain } from '@ton/sandbox';
import { Cell, toNano } from '@ton/core';
import '@ton/test-utils';
import * as fs from 'fs';
import * as path from 'path';
import { compileTolk } from '../wrappers/compile';
import { Channel, CHANNEL_ERR, DEPOSIT_GAS, depositBody, payeeCloseBody, promiseCell } from '../wrappers/Channel';
import { flipBit, flipBufferBit } from './helpers';

const FILE = process.env.SILK_PROMISES_FIXTURE ?? path.join(__dirname, '..', 'fixtures', 'promises-rust.json');

type Row = { channel_id: string; seqno: string | number; amount: string | number; payer_pubkey: string; signature: string };

const rows: Row[] = fs.existsSync(FILE) ? JSON.parse(fs.readFileSync(FILE, 'utf-8')) : [];
const maybe = fs.existsSync(FILE) ? describe : describe.skip;

maybe(`promises fixture (${path.relative(process.cwd(), FILE)})`, () => {
    let code: Cell;
    beforeAll(async () => {
        code = await compileTolk('channel');
    });

    it('has at least one promise', () => {
        expect(rows.length).toBeGreaterThan(0);
    });

    it.each(rows.map((r, i) => [i, r] as const))('promise #%i is accepted and every single-bit flip refused', async (_i, row) => {
        const channelId = BigInt('0x' + row.channel_id);
        const seqno = BigInt(row.seqno);
        const amount = BigInt(row.amount);
        const payerKey = Buffer.from(row.payer_pubkey, 'hex');
        const signature = Buffer.from(row.signature, 'hex');
        expect(payerKey.length).toBe(32);
        expect(signature.length).toBe(64);

        const bc = await Blockchain.create();
        const payer = await bc.treasury('payer');
        const payee = await bc.treasury('payee');
        const ch = bc.openContract(Channel.createFromConfig({
            channelId, payer: payer.address, payerKey, payee: payee.address, disputeWindow: 3600, expiry: 2_000_000_000,
        }, code));
        const deposit = amount + toNano('1');
        await ch.send(payer.getSender(), deposit + DEPOSIT_GAS, depositBody(deposit));

        const promise = promiseCell(channelId, seqno, amount);
        for (let i = 0; i < promise.bits.length; i++) {
            const r = await ch.send(payee.getSender(), toNano('0.05'), payeeCloseBody({ promise: flipBit(promise, i), signature }));
            expect(r.transactions).toHaveTransaction({ to: ch.address, success: false, exitCode: CHANNEL_ERR.badSignature });
        }
        for (let i = 0; i < 512; i++) {
            const r = await ch.send(payee.getSender(), toNano('0.05'), payeeCloseBody({ promise, signature: flipBufferBit(signature, i) }));
            expect(r.transactions).toHaveTransaction({ to: ch.address, success: false, exitCode: CHANNEL_ERR.badSignature });
        }
        const r = await ch.send(payee.getSender(), toNano('0.05'), payeeCloseBody({ promise, signature }));
        expect(r.transactions).toHaveTransaction({ to: ch.address, success: true });
        if (amount > 0n) {
            expect(r.transactions).toHaveTransaction({ from: ch.address, to: payee.address, value: amount });
        }
        const st = await ch.getState();
        expect(st.bestSeqno).toBe(seqno);
        expect(st.bestAmount).toBe(amount);
    });
});

if (!fs.existsSync(FILE)) {
    it(`promises fixture absent (${FILE}): skipped`, () => undefined);
}
