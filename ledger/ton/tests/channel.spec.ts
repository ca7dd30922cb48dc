import { Blockchain, SandboxContract, TreasuryContract } from '@ton/sandbox';
import { Cell, toNano } from '@ton/core';
import { KeyPair, keyPairFromSeed, sha256_sync } from '@ton/crypto';
import '@ton/test-utils';
import { compileTolk } from '../wrappers/compile';
import {
    Channel, CHANNEL_ERR, CHANNEL_STATE, DEPOSIT_GAS, depositBody, disputeBody, finishBody,
    payeeCloseBody, payerStartCloseBody, promiseCell, signPromise, SignedPromise,
} from '../wrappers/Channel';
import { computeOf, flipBit, flipBufferBit, GasTable, txOn } from './helpers';

const T0 = 1_800_000_000;
const WINDOW = 3600;
const EXPIRY = T0 + 86400;
const OP_VALUE = toNano('0.05');

const gas = new GasTable();

describe('payment channel', () => {
    let code: Cell;
    let bc: Blockchain;
    let payer: SandboxContract<TreasuryContract>;
    let payee: SandboxContract<TreasuryContract>;
    let other: SandboxContract<TreasuryContract>;
    let payerKey: KeyPair;
    let otherKey: KeyPair;
    let channelId: bigint;
    let ch: SandboxContract<Channel>;

    const promise = (seqno: number, amount: bigint, key: KeyPair = payerKey, id: bigint = channelId): SignedPromise => {
        const p = promiseCell(id, seqno, amount);
        return { promise: p, signature: signPromise(p, key.secretKey) };
    };

    beforeAll(async () => {
        code = await compileTolk('channel');
        payerKey = keyPairFromSeed(sha256_sync('silk test payer'));
        otherKey = keyPairFromSeed(sha256_sync('silk test someone else'));
    });
    afterAll(() => gas.print('payment channel gas (compute phase, gas units)'));

    beforeEach(async () => {
        bc = await Blockchain.create();
        bc.now = T0;
        payer = await bc.treasury('payer');
        payee = await bc.treasury('payee');
        other = await bc.treasury('other');
        // channel id: derived at deploy from the parties and a nonce, unique per channel
        channelId = BigInt('0x' + sha256_sync(Buffer.concat([
            payerKey.publicKey, payee.address.hash, Buffer.from('nonce-1'),
        ])).toString('hex'));
        ch = bc.openContract(Channel.createFromConfig({
            channelId, payer: payer.address, payerKey: payerKey.publicKey, payee: payee.address,
            disputeWindow: WINDOW, expiry: EXPIRY,
        }, code));
        const r = await ch.send(payer.getSender(), toNano('10') + DEPOSIT_GAS, depositBody(toNano('10')));
        expect(r.transactions).toHaveTransaction({ from: payer.address, to: ch.address, deploy: true, success: true });
        gas.record('deploy + deposit', txOn(r, ch.address));
    });

    const expectExit = (r: { transactions: any[] }, from: any, exitCode: number) =>
        expect(r.transactions).toHaveTransaction({ from, to: ch.address, success: false, exitCode });

    describe('deposit', () => {
        it('accepts the payer\'s deposit and adds it', async () => {
            expect((await ch.getState()).deposit).toBe(toNano('10'));
            const r = await ch.send(payer.getSender(), toNano('2') + DEPOSIT_GAS, depositBody(toNano('2')));
            expect(r.transactions).toHaveTransaction({ from: payer.address, to: ch.address, success: true });
            gas.record('deposit', txOn(r, ch.address));
            expect((await ch.getState()).deposit).toBe(toNano('12'));
        });
        it('refuses a deposit from anyone but the payer (100)', async () => {
            const r = await ch.send(other.getSender(), toNano('2') + DEPOSIT_GAS, depositBody(toNano('2')));
            expectExit(r, other.address, CHANNEL_ERR.wrongSender);
            const r2 = await ch.send(payee.getSender(), toNano('2') + DEPOSIT_GAS, depositBody(toNano('2')));
            expectExit(r2, payee.address, CHANNEL_ERR.wrongSender);
            expect((await ch.getState()).deposit).toBe(toNano('10'));
        });
        it('refuses a deposit whose value does not cover amount + gas (111)', async () => {
            const r = await ch.send(payer.getSender(), toNano('2'), depositBody(toNano('2')));
            expectExit(r, payer.address, CHANNEL_ERR.valueTooLow);
        });
        it('accepts a plain top-up (empty body) from anyone, refuses an unknown op (112)', async () => {
            const r = await ch.send(other.getSender(), toNano('1'), Cell.EMPTY);
            expect(r.transactions).toHaveTransaction({ from: other.address, to: ch.address, success: true });
            gas.record('top-up (open)', txOn(r, ch.address));
            expect(r.transactions).not.toHaveTransaction({ from: ch.address, to: other.address });
            const r2 = await ch.send(payer.getSender(), OP_VALUE, finishBody().asBuilder().asCell());
            expectExit(r2, payer.address, CHANNEL_ERR.notClosing);
            const { beginCell } = await import('@ton/core');
            const r3 = await ch.send(payer.getSender(), OP_VALUE, beginCell().storeUint(0xdeadbeef, 32).endCell());
            expectExit(r3, payer.address, CHANNEL_ERR.unknownOp);
        });
    });

    describe('payee close', () => {
        it('full flow: 10 TON deposit, rising promises, payee closes with the latest; exact to the nanoton', async () => {
            const amounts = [toNano('0.5'), toNano('1.25'), toNano('2'), toNano('3.000000001'), toNano('3.25')];
            const promises = amounts.map((a, i) => promise(i + 1, a));
            const latest = promises[promises.length - 1];
            const before = (await bc.getContract(ch.address)).balance;
            const r = await ch.send(payee.getSender(), OP_VALUE, payeeCloseBody(latest));
            const tx = txOn(r, ch.address);
            expect(computeOf(tx).success).toBe(true);
            gas.record('payee close (pays 2)', tx);

            const st = await ch.getState();
            expect(st.state).toBe(CHANNEL_STATE.closed);
            expect(st.bestSeqno).toBe(5n);
            expect(st.bestAmount).toBe(toNano('3.25'));

            // the two payouts, read from the transaction's out messages
            const outs = tx.outMessages.values();
            expect(outs.length).toBe(2);
            const toPayee = outs.find((m) => m.info.dest!.toString() === payee.address.toString())!;
            const toPayer = outs.find((m) => m.info.dest!.toString() === payer.address.toString())!;
            if (toPayee.info.type !== 'internal' || toPayer.info.type !== 'internal') throw new Error('internal expected');
            // payee: exactly the promised amount (its forwarding fee was paid from the channel's balance)
            expect(toPayee.info.value.coins).toBe(toNano('3.25'));
            // payer: everything else, i.e. deposit - amount + the gas buffer, minus this transaction's fees
            const fees = tx.totalFees.coins + toPayee.info.forwardFee + toPayer.info.forwardFee;
            expect(toPayer.info.value.coins).toBe(before + OP_VALUE - toNano('3.25') - fees);
            // and at least deposit - amount reaches the payer: the buffer (DEPOSIT_GAS + the payee's
            // attached value) covered all the gas and fees
            expect(toPayer.info.value.coins).toBeGreaterThan(toNano('10') - toNano('3.25'));
            expect((await bc.getContract(ch.address)).balance).toBe(0n);
            // both arrived
            expect(r.transactions).toHaveTransaction({ from: ch.address, to: payee.address, value: toNano('3.25'), success: true });
            expect(r.transactions).toHaveTransaction({ from: ch.address, to: payer.address, value: toPayer.info.value.coins, success: true });
            console.log(`full flow: channel balance before close ${before}, payee +${toPayee.info.value.coins}, ` +
                `payer +${toPayer.info.value.coins}, fees ${fees} (tx ${tx.totalFees.coins} + fwd ${toPayee.info.forwardFee} + ${toPayer.info.forwardFee})`);
        });
        it('accepts a promise for the whole deposit', async () => {
            const r = await ch.send(payee.getSender(), OP_VALUE, payeeCloseBody(promise(1, toNano('10'))));
            expect(r.transactions).toHaveTransaction({ from: ch.address, to: payee.address, value: toNano('10') });
        });
        it('refuses a forged signature (101)', async () => {
            const r = await ch.send(payee.getSender(), OP_VALUE, payeeCloseBody(promise(1, toNano('1'), otherKey)));
            expectExit(r, payee.address, CHANNEL_ERR.badSignature);
        });
        it('refuses an amount above the deposit (103)', async () => {
            const r = await ch.send(payee.getSender(), OP_VALUE, payeeCloseBody(promise(1, toNano('10') + 1n)));
            expectExit(r, payee.address, CHANNEL_ERR.amountAboveDeposit);
        });
        it('refuses a promise for another channel id (104)', async () => {
            const r = await ch.send(payee.getSender(), OP_VALUE, payeeCloseBody(promise(1, toNano('1'), payerKey, channelId ^ 1n)));
            expectExit(r, payee.address, CHANNEL_ERR.wrongChannel);
        });
        it('refuses seqno 0 (not higher than the initial best, 102)', async () => {
            const r = await ch.send(payee.getSender(), OP_VALUE, payeeCloseBody(promise(0, toNano('1'))));
            expectExit(r, payee.address, CHANNEL_ERR.seqnoNotHigher);
        });
        it('refuses a close from the payer or a third party (100)', async () => {
            for (const s of [payer, other]) {
                const r = await ch.send(s.getSender(), OP_VALUE, payeeCloseBody(promise(1, toNano('1'))));
                expectExit(r, s.address, CHANNEL_ERR.wrongSender);
            }
        });
        it('refuses a second close and anything after closed (105)', async () => {
            await ch.send(payee.getSender(), OP_VALUE, payeeCloseBody(promise(1, toNano('1'))));
            const tries: [SandboxContract<TreasuryContract>, Cell][] = [
                [payee, payeeCloseBody(promise(2, toNano('2')))],
                [payer, depositBody(toNano('1'))],
                [payer, payerStartCloseBody()],
                [payee, disputeBody(promise(3, toNano('2')))],
                [other, finishBody()],
            ];
            for (const [s, body] of tries) {
                const r = await ch.send(s.getSender(), toNano('2'), body);
                expectExit(r, s.address, CHANNEL_ERR.closed);
            }
        });
        it('refuses a plain top-up (empty body) after closed (105) and bounces it: the sender gets its value back less fees', async () => {
            await ch.send(payee.getSender(), OP_VALUE, payeeCloseBody(promise(1, toNano('1'))));
            expect((await ch.getState()).state).toBe(CHANNEL_STATE.closed);
            const value = toNano('2');
            const before = await other.getBalance();
            const r = await ch.send(other.getSender(), value, Cell.EMPTY); // bounceable (the sandbox default)
            expectExit(r, other.address, CHANNEL_ERR.closed);
            const tx = txOn(r, ch.address);
            // the bounce: one message back to the sender, carrying the value less this transaction's
            // gas and the bounce's own forwarding fee
            const outs = tx.outMessages.values();
            expect(outs.length).toBe(1);
            const back = outs[0];
            if (back.info.type !== 'internal') throw new Error('internal expected');
            expect(back.info.dest.equals(other.address)).toBe(true);
            expect(back.info.bounced).toBe(true);
            expect(back.info.value.coins).toBeGreaterThan(value - toNano('0.01'));
            expect(back.info.value.coins + computeOf(tx).gasFees + back.info.forwardFee).toBeLessThanOrEqual(value);
            expect(r.transactions).toHaveTransaction({ from: ch.address, to: other.address, inMessageBounced: true, value: back.info.value.coins });
            // the sender lost only fees; nothing stayed on the channel
            expect(before - (await other.getBalance())).toBeLessThan(toNano('0.01'));
            expect((await bc.getContract(ch.address)).balance).toBe(0n);
        });
        it('accepts a plain top-up while closing (it stays with the payer\'s share)', async () => {
            bc.now = EXPIRY;
            await ch.send(payer.getSender(), OP_VALUE, payerStartCloseBody());
            expect((await ch.getState()).state).toBe(CHANNEL_STATE.closing);
            const r = await ch.send(other.getSender(), toNano('1'), Cell.EMPTY);
            expect(r.transactions).toHaveTransaction({ from: other.address, to: ch.address, success: true });
            gas.record('top-up (closing)', txOn(r, ch.address));
            expect(r.transactions).not.toHaveTransaction({ from: ch.address, to: other.address });
        });
    });

    describe('payer close and dispute', () => {
        it('refuses a payer close before the expiry (107), accepts it after', async () => {
            const r = await ch.send(payer.getSender(), OP_VALUE, payerStartCloseBody(promise(1, toNano('1'))));
            expectExit(r, payer.address, CHANNEL_ERR.notExpired);
            bc.now = EXPIRY;
            const r2 = await ch.send(payer.getSender(), OP_VALUE, payerStartCloseBody(promise(1, toNano('1'))));
            expect(r2.transactions).toHaveTransaction({ from: payer.address, to: ch.address, success: true });
            gas.record('payer start close (with promise)', txOn(r2, ch.address));
            const st = await ch.getState();
            expect(st.state).toBe(CHANNEL_STATE.closing);
            expect(st.closeStarted).toBe(EXPIRY);
        });
        it('refuses a start close from the payee or a third party (100), and a second one (106)', async () => {
            bc.now = EXPIRY;
            for (const s of [payee, other]) {
                const r = await ch.send(s.getSender(), OP_VALUE, payerStartCloseBody());
                expectExit(r, s.address, CHANNEL_ERR.wrongSender);
            }
            await ch.send(payer.getSender(), OP_VALUE, payerStartCloseBody());
            const r = await ch.send(payer.getSender(), OP_VALUE, payerStartCloseBody());
            expectExit(r, payer.address, CHANNEL_ERR.alreadyClosing);
            const r2 = await ch.send(payer.getSender(), toNano('1') + DEPOSIT_GAS, depositBody(toNano('1')));
            expectExit(r2, payer.address, CHANNEL_ERR.alreadyClosing);
        });
        it('refuses a forged promise in the payer\'s close (101)', async () => {
            bc.now = EXPIRY;
            const r = await ch.send(payer.getSender(), OP_VALUE, payerStartCloseBody(promise(1, toNano('1'), otherKey)));
            expectExit(r, payer.address, CHANNEL_ERR.badSignature);
        });
        it('a payer closing with an old promise loses the dispute', async () => {
            const ps = [1, 2, 3, 4].map((i) => promise(i, toNano(String(i))));
            bc.now = EXPIRY + 10;
            const r1 = await ch.send(payer.getSender(), OP_VALUE, payerStartCloseBody(ps[1])); // seqno 2: 2 TON
            expect(r1.transactions).toHaveTransaction({ to: ch.address, success: true });
            // the payee answers within the window with seqno 4; replaying seqno 2 or an older one is refused
            bc.now = EXPIRY + 10 + WINDOW - 1;
            for (const old of [ps[0], ps[1]]) {
                const r = await ch.send(payee.getSender(), OP_VALUE, disputeBody(old));
                expectExit(r, payee.address, CHANNEL_ERR.seqnoNotHigher);
            }
            const rp = await ch.send(payer.getSender(), OP_VALUE, disputeBody(ps[3]));
            expectExit(rp, payer.address, CHANNEL_ERR.wrongSender);
            const r2 = await ch.send(payee.getSender(), OP_VALUE, disputeBody(ps[3]));
            expect(r2.transactions).toHaveTransaction({ from: payee.address, to: ch.address, success: true });
            gas.record('payee dispute', txOn(r2, ch.address));
            const r3 = await ch.send(payee.getSender(), OP_VALUE, disputeBody(ps[2]));
            expectExit(r3, payee.address, CHANNEL_ERR.seqnoNotHigher);
            expect((await ch.getState()).bestAmount).toBe(toNano('4'));
            // finishing inside the window is refused (110); after it, anyone may finish
            const r4 = await ch.send(other.getSender(), OP_VALUE, finishBody());
            expectExit(r4, other.address, CHANNEL_ERR.disputeWindowOpen);
            bc.now = EXPIRY + 10 + WINDOW;
            const r5 = await ch.send(payee.getSender(), OP_VALUE, disputeBody(promise(5, toNano('5'))));
            expectExit(r5, payee.address, CHANNEL_ERR.disputeOver);
            const r6 = await ch.send(payee.getSender(), OP_VALUE, payeeCloseBody(promise(5, toNano('5'))));
            expectExit(r6, payee.address, CHANNEL_ERR.disputeOver);
            const before = (await bc.getContract(ch.address)).balance;
            const r7 = await ch.send(other.getSender(), OP_VALUE, finishBody());
            const tx = txOn(r7, ch.address);
            gas.record('finish (pays 2)', tx);
            expect(r7.transactions).toHaveTransaction({ from: ch.address, to: payee.address, value: toNano('4'), success: true });
            const toPayer = tx.outMessages.values().find((m) => m.info.dest!.toString() === payer.address.toString())!;
            const toPayee = tx.outMessages.values().find((m) => m.info.dest!.toString() === payee.address.toString())!;
            if (toPayer.info.type !== 'internal' || toPayee.info.type !== 'internal') throw new Error();
            expect(toPayer.info.value.coins).toBe(before + OP_VALUE - toNano('4') - tx.totalFees.coins - toPayer.info.forwardFee - toPayee.info.forwardFee);
            expect((await ch.getState()).state).toBe(CHANNEL_STATE.closed);
        });
        it('the payee may also settle at once inside the window with a newer promise', async () => {
            bc.now = EXPIRY;
            await ch.send(payer.getSender(), OP_VALUE, payerStartCloseBody(promise(1, toNano('1'))));
            const r = await ch.send(payee.getSender(), OP_VALUE, payeeCloseBody(promise(2, toNano('6'))));
            expect(r.transactions).toHaveTransaction({ from: ch.address, to: payee.address, value: toNano('6') });
            expect((await ch.getState()).state).toBe(CHANNEL_STATE.closed);
        });
        it('timeout: payee never acts, the payer closes after the expiry and anyone finishes; all back to the payer', async () => {
            bc.now = EXPIRY + 1000;
            const r1 = await ch.send(payer.getSender(), OP_VALUE, payerStartCloseBody());
            gas.record('payer start close (no promise)', txOn(r1, ch.address));
            bc.now = EXPIRY + 1000 + WINDOW;
            const before = (await bc.getContract(ch.address)).balance;
            const r = await ch.send(other.getSender(), OP_VALUE, finishBody());
            const tx = txOn(r, ch.address);
            gas.record('finish (payer only)', tx);
            expect(tx.outMessages.size).toBe(1);
            const m = tx.outMessages.get(0)!;
            if (m.info.type !== 'internal') throw new Error();
            expect(m.info.dest.toString()).toBe(payer.address.toString());
            expect(m.info.value.coins).toBe(before + OP_VALUE - tx.totalFees.coins - m.info.forwardFee);
            expect(m.info.value.coins).toBeGreaterThan(toNano('10'));
        });
        it('dispute and finish are refused while the channel is open (108)', async () => {
            const r = await ch.send(payee.getSender(), OP_VALUE, disputeBody(promise(1, toNano('1'))));
            expectExit(r, payee.address, CHANNEL_ERR.notClosing);
            const r2 = await ch.send(other.getSender(), OP_VALUE, finishBody());
            expectExit(r2, other.address, CHANNEL_ERR.notClosing);
        });
    });

    describe('signed promise integrity', () => {
        it('refuses every single-bit flip of the promise cell and of the signature (101), then accepts the original', async () => {
            const good = promise(7, toNano('1.5'));
            let n = 0;
            for (let i = 0; i < good.promise.bits.length; i++) {
                const r = await ch.send(payee.getSender(), OP_VALUE, payeeCloseBody({ promise: flipBit(good.promise, i), signature: good.signature }));
                expectExit(r, payee.address, CHANNEL_ERR.badSignature);
                n++;
            }
            for (let i = 0; i < 512; i++) {
                const r = await ch.send(payee.getSender(), OP_VALUE, payeeCloseBody({ promise: good.promise, signature: flipBufferBit(good.signature, i) }));
                expectExit(r, payee.address, CHANNEL_ERR.badSignature);
                n++;
            }
            expect(n).toBe(good.promise.bits.length + 512);
            const r = await ch.send(payee.getSender(), OP_VALUE, payeeCloseBody(good));
            expect(r.transactions).toHaveTransaction({ from: ch.address, to: payee.address, value: toNano('1.5') });
        });
    });
});
