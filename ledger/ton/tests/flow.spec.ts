// Runs message flows written elsewhere (the Rust side, an end-to-end run) against the contracts:
// each step is a TON Connect sendTransaction request as a wallet would get it, sent as internal
// messages from the step's `from` address; every step's exit code is checked, and at the end
// every expected channel must be closed with the payee paid exactly and the payer the rest.
// Flows (each on its own fresh sandbox):
//   fixtures/channel-flow-sample/  made by scripts/make-flow-sample.js (TS wrappers)
//   fixtures/channel-flow-rust/    written by the Rust side, when present
//   $SILK_E2E_DIR                  written by an end-to-end run, when set
// Format: see README.md ("Message flows").
import { Blockchain, internal } from '@ton/sandbox';
import { Address, Cell, loadStateInit, Transaction } from '@ton/core';
import * as fs from 'fs';
import * as path from 'path';
import { Channel, CHANNEL_STATE } from '../wrappers/Channel';
import { computeOf, txOn } from './helpers';

const CHANNEL_CODE_HASH = Cell.fromBoc(fs.readFileSync(path.join(__dirname, '..', 'build', 'channel.code.boc')))[0]
    .hash()
    .toString('hex');

type Step = { name: string; from: string; request: string; now?: number; exit: number };
type ExpectedChannel = { address: string; payer: string; payee: string; deposit: string; paid: string };
type Flow = { steps: Step[]; expect: { channels: ExpectedChannel[] } };
type Request = { validUntil: number; messages: { address: string; amount: string; payload?: string; stateInit?: string }[] };

/** What one message did, kept for the final checks and the printed table. */
type Sent = { step: number; name: string; to: Address; value: bigint; balanceBefore: bigint; tx: Transaction; exit: number; gas: bigint };

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const flows: { label: string; dir: string }[] = [];
const skipped: string[] = [];
for (const [label, dir] of [['sample', 'channel-flow-sample'], ['rust', 'channel-flow-rust']]) {
    const full = path.join(FIXTURES, dir);
    if (fs.existsSync(path.join(full, 'steps.json'))) flows.push({ label, dir: full });
    else skipped.push(`${label}: fixtures/${dir}/steps.json absent (the Rust side writes it)`);
}
if (process.env.SILK_E2E_DIR) flows.push({ label: 'e2e', dir: path.resolve(process.env.SILK_E2E_DIR) });
else skipped.push('e2e: SILK_E2E_DIR unset (an end-to-end run sets it to the flow it wrote)');

/** One-root BoC from base64 (standard or url-safe, as Buffer takes both). */
function oneCell(b64: string, what: string): Cell {
    const roots = Cell.fromBoc(Buffer.from(b64, 'base64'));
    if (roots.length !== 1) throw new Error(`${what}: ${roots.length} root cells, expected 1`);
    return roots[0];
}

/** A TON Connect address: friendly (its bounceable flag is the message's bounce) or raw (bounce). */
function destination(s: string): { to: Address; bounce: boolean } {
    if (Address.isFriendly(s)) {
        const f = Address.parseFriendly(s);
        return { to: f.address, bounce: f.isBounceable };
    }
    return { to: Address.parseRaw(s), bounce: true };
}

for (const flow of flows) {
    const shown = path.relative(process.cwd(), flow.dir);
    describe(`message flow ${flow.label} (${shown.startsWith('..') ? flow.dir : shown})`, () => {
        const spec: Flow = JSON.parse(fs.readFileSync(path.join(flow.dir, 'steps.json'), 'utf-8'));
        let bc: Blockchain;
        const sent: Sent[] = [];
        const allTxs: Transaction[] = [];

        beforeAll(async () => {
            bc = await Blockchain.create();
        });
        afterAll(() => {
            const lines = [`flow ${flow.label}`, '| # | step | exit | gas used |', '|---:|---|---:|---:|'];
            for (const s of sent) lines.push(`| ${s.step} | ${s.name} | ${s.exit} | ${s.gas} |`);
            console.log(lines.join('\n'));
        });

        it('has steps and expected channels', () => {
            expect(spec.steps.length).toBeGreaterThan(0);
            expect(spec.expect.channels.length).toBeGreaterThan(0);
        });

        spec.steps.forEach((step, i) => {
            it(`step ${i + 1}: ${step.name} (exit ${step.exit})`, async () => {
                const req: Request = JSON.parse(fs.readFileSync(path.join(flow.dir, step.request), 'utf-8'));
                // validUntil is checked by the wallet against real time, not the sandbox's: shape only
                expect(Number.isInteger(req.validUntil)).toBe(true);
                expect(req.messages.length).toBeGreaterThan(0);
                if (step.now !== undefined) bc.now = step.now;
                const from = Address.parse(step.from);
                for (const [k, m] of req.messages.entries()) {
                    const what = `${step.request} message ${k}`;
                    const { to, bounce } = destination(m.address);
                    if (!/^[0-9]+$/.test(m.amount)) throw new Error(`${what}: amount ${m.amount} is not a decimal string`);
                    const value = BigInt(m.amount);
                    const body = m.payload ? oneCell(m.payload, `${what} payload`) : Cell.EMPTY;
                    let stateInit;
                    if (m.stateInit) {
                        const init = oneCell(m.stateInit, `${what} stateInit`);
                        // a deploy: the destination must be the address the state init hashes to
                        expect(new Address(to.workChain, init.hash()).toRawString()).toBe(to.toRawString());
                        stateInit = loadStateInit(init.beginParse());
                        // and it must deploy today's contract (build/channel.code.boc), so a flow
                        // written against older code fails here instead of testing that code
                        expect(stateInit.code?.hash().toString('hex')).toBe(CHANNEL_CODE_HASH);
                    }
                    const balanceBefore = (await bc.getContract(to)).balance;
                    const r = await bc.sendMessage(internal({ from, to, value, body, stateInit, bounce }));
                    allTxs.push(...r.transactions);
                    const tx = txOn(r, to);
                    const c = computeOf(tx);
                    sent.push({ step: i + 1, name: step.name, to, value, balanceBefore, tx, exit: c.exitCode, gas: c.gasUsed });
                    if (c.exitCode !== step.exit) {
                        throw new Error(`${what} to ${to.toRawString()}: exit ${c.exitCode}, expected ${step.exit}`);
                    }
                    if (step.exit === 0 && tx.description.type === 'generic') {
                        // success means the whole transaction: its payouts (action phase) too
                        expect(tx.description.aborted).toBe(false);
                    }
                }
            });
        });

        /** One expected channel's final checks; returns its two payouts. */
        const checkChannel = async (e: ExpectedChannel) => {
            const addr = Address.parse(e.address);
            const payer = Address.parse(e.payer);
            const payee = Address.parse(e.payee);
            const paid = BigInt(e.paid);
            const deposit = BigInt(e.deposit);
            const ch = bc.openContract(new Channel(addr));
            const st = await ch.getState();
            expect(st.state).toBe(CHANNEL_STATE.closed);
            expect(st.bestAmount).toBe(paid);
            expect(st.deposit).toBe(deposit);
            const p = await ch.getParties();
            expect(p.payer.toRawString()).toBe(payer.toRawString());
            expect(p.payee.toRawString()).toBe(payee.toRawString());

            // the settling transaction: the one on this channel that sent its payouts
            const settles = sent.filter((s) => s.to.equals(addr) && s.exit === 0 && s.tx.outMessages.size > 0);
            expect(settles.length).toBe(1);
            const s = settles[0];
            const outs = s.tx.outMessages.values();
            const toPayee = outs.find((m) => m.info.dest instanceof Address && m.info.dest.equals(payee));
            const toPayer = outs.find((m) => m.info.dest instanceof Address && m.info.dest.equals(payer));
            if (!toPayer || toPayer.info.type !== 'internal') throw new Error('no payout to the payer');
            let fwd = toPayer.info.forwardFee;
            if (paid > 0n) {
                if (!toPayee || toPayee.info.type !== 'internal') throw new Error('no payout to the payee');
                expect(toPayee.info.value.coins).toBe(paid);
                fwd += toPayee.info.forwardFee;
            } else {
                expect(toPayee).toBeUndefined(); // nothing is sent when nothing was promised
            }
            expect(outs.length).toBe(paid > 0n ? 2 : 1);
            const payerOut = toPayer.info.value.coins;
            // every fee of the settle came from the payer's share, and only that
            expect(payerOut).toBe(s.balanceBefore + s.value - paid - (s.tx.totalFees.coins + fwd));
            expect(payerOut).toBeGreaterThan(deposit - paid);
            expect((await bc.getContract(addr)).balance).toBe(0n);
            console.log(`${flow.label} ${e.address}: balance before settle ${s.balanceBefore} + attached ${s.value}, ` +
                `payee +${paid}, payer +${payerOut}, fees ${s.tx.totalFees.coins} + fwd ${fwd}`);
            return { payee: payee.toRawString(), paid, payer: payer.toRawString(), payerOut };
        };

        /** A plain account (starts at 0): its balance is its payouts, plus the refunds of refused
         *  messages it sent (bounces), less its own account's storage fees. */
        const checkAccount = async (raw: string, payouts: bigint) => {
            const a = Address.parseRaw(raw);
            let received = 0n;
            let bounced = 0n;
            let fees = 0n;
            for (const tx of allTxs) {
                const d = tx.inMessage?.info.dest;
                if (!(d instanceof Address) || !d.equals(a)) continue;
                fees += tx.totalFees.coins;
                const info = tx.inMessage!.info;
                if (info.type !== 'internal') continue;
                if (info.bounced) bounced += info.value.coins;
                else received += info.value.coins;
            }
            expect(received).toBe(payouts);
            expect((await bc.getContract(a)).balance).toBe(payouts + bounced - fees);
            if (bounced > 0n || fees > 0n) console.log(`${flow.label} ${raw}: payouts ${payouts} + bounced ${bounced} - own fees ${fees}`);
        };

        // the same expectations run for every channel and account: name which one failed
        const naming = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
            try {
                return await f();
            } catch (err) {
                if (err instanceof Error) err.message = `${what}: ${err.message}`;
                throw err;
            }
        };

        it('every expected channel is closed, the payee paid exactly and the payer the rest', async () => {
            const payouts = new Map<string, bigint>(); // raw address -> what its channels paid it
            const credit = (a: string, v: bigint) => payouts.set(a, (payouts.get(a) ?? 0n) + v);
            for (const e of spec.expect.channels) {
                const r = await naming(`expected channel ${e.address}`, () => checkChannel(e));
                credit(r.payee, r.paid);
                credit(r.payer, r.payerOut);
            }
            for (const [raw, v] of payouts) await naming(`account ${raw}`, () => checkAccount(raw, v));
        });
    });
}

describe('message flows not run', () => {
    for (const why of skipped) it.skip(why, () => undefined);
    if (skipped.length === 0) it('none', () => undefined);
});
if (skipped.length > 0) console.log(`message flows skipped:\n  ${skipped.join('\n  ')}`);
