import { Blockchain, SandboxContract, TreasuryContract } from '@ton/sandbox';
import { beginCell, Builder, Cell, toNano } from '@ton/core';
import { KeyPair, keyPairFromSeed, sha256_sync, sign } from '@ton/crypto';
import '@ton/test-utils';
import { compileTolk } from '../wrappers/compile';
import {
    ImageEntry, imageEntryCell, parseImageEntry, Registry, REGISTRY_ERR, registryPayload,
    RegistryAction, signedRegistryBody, textCell,
} from '../wrappers/Registry';
import { GasTable, txOn } from './helpers';

const T0 = 1_800_000_000;
const REGISTRY_ID = 0x51_1c_00_01;
const gas = new GasTable();

const m = (tag: string) => sha256_sync(tag).subarray(0, 32);
const b48 = (tag: string) => Buffer.concat([sha256_sync(tag), sha256_sync(tag + '2').subarray(0, 16)]);
const digest = (tag: string) => BigInt('0x' + sha256_sync(tag).toString('hex'));

const SNP: ImageEntry = { snpLaunchDigest: b48('snp'), modelId: 'sha256:' + m('model-a').toString('hex'), label: 'silk 0.3 / SEV-SNP / Qwen' };
const TDX: ImageEntry = {
    tdxMrtd: b48('mrtd'), tdxRtmr1: b48('rtmr1'), tdxRtmr2: b48('rtmr2'),
    modelId: 'sha256:' + m('model-b').toString('hex'),
    label: 'silk 0.3 / TDX / a label longer than one cell: ' + 'x'.repeat(200),
};

describe('image registry', () => {
    let code: Cell;
    let bc: Blockchain;
    let owner: KeyPair;
    let stranger: KeyPair;
    let anyone: SandboxContract<TreasuryContract>;
    let reg: SandboxContract<Registry>;

    beforeAll(async () => {
        code = await compileTolk('registry');
        owner = keyPairFromSeed(sha256_sync('silk registry owner'));
        stranger = keyPairFromSeed(sha256_sync('not the owner'));
    });
    afterAll(() => gas.print('registry gas (compute phase, gas units)'));

    beforeEach(async () => {
        bc = await Blockchain.create();
        bc.now = T0;
        anyone = await bc.treasury('anyone');
        reg = bc.openContract(Registry.createFromConfig({ registryId: REGISTRY_ID, ownerKey: owner.publicKey }, code));
        const r = await reg.sendDeploy(anyone.getSender(), toNano('1'));
        expect(r.transactions).toHaveTransaction({ to: reg.address, deploy: true, success: true });
    });

    const body = (a: RegistryAction, o: { seqno?: number; validUntil?: number; key?: KeyPair; registryId?: number } = {}) =>
        signedRegistryBody(
            registryPayload(o.registryId ?? REGISTRY_ID, o.seqno ?? 0, o.validUntil ?? T0 + 60, a),
            (o.key ?? owner).secretKey,
        );

    const refused = async (b: Cell, exitCode: number) => {
        await expect(reg.sendExternal(b)).rejects.toMatchObject({ exitCode });
    };

    it('get-methods on a fresh registry: seqno 0, owner key, registry id, empty list', async () => {
        expect(await reg.getSeqno()).toBe(0);
        expect(await reg.getOwnerKey()).toBe(BigInt('0x' + owner.publicKey.toString('hex')));
        expect(await reg.getRegistryId()).toBe(REGISTRY_ID);
        expect((await reg.getImages()).size).toBe(0);
        expect(await reg.getImage(digest('a'))).toBeNull();
    });

    it('adds entries, returns them one by one and as a dictionary, removes them', async () => {
        const r1 = await reg.sendExternal(body({ op: 'add', digest: digest('a'), entry: imageEntryCell(SNP) }));
        gas.record('add image (SNP entry)', txOn(r1, reg.address));
        const r2 = await reg.sendExternal(body({ op: 'add', digest: digest('b'), entry: imageEntryCell(TDX) }, { seqno: 1 }));
        gas.record('add image (TDX entry, 2nd)', txOn(r2, reg.address));
        expect(await reg.getSeqno()).toBe(2);
        expect(parseImageEntry((await reg.getImage(digest('a')))!)).toEqual(SNP);
        expect(parseImageEntry((await reg.getImage(digest('b')))!)).toEqual(TDX);
        const all = await reg.getImages();
        expect([...all.keys()].sort()).toEqual([digest('a'), digest('b')].sort());
        expect(parseImageEntry(all.get(digest('b'))!)).toEqual(TDX);

        const r3 = await reg.sendExternal(body({ op: 'remove', digest: digest('a') }, { seqno: 2 }));
        gas.record('remove image', txOn(r3, reg.address));
        expect(await reg.getImage(digest('a'))).toBeNull();
        expect((await reg.getImages()).size).toBe(1);
        expect(await reg.getSeqno()).toBe(3);
    });

    it('refuses a signature by another key (200) and single-bit flips of the signature (bits 0, 7, 100, 511)', async () => {
        await refused(body({ op: 'add', digest: digest('a'), entry: imageEntryCell(SNP) }, { key: stranger }), REGISTRY_ERR.badSignature);
        const payload = registryPayload(REGISTRY_ID, 0, T0 + 60, { op: 'remove', digest: digest('a') });
        const sig = sign(payload.hash(), owner.secretKey);
        for (const i of [0, 7, 100, 511]) {
            const s = Buffer.from(sig);
            s[i >> 3] ^= 0x80 >> (i & 7);
            await refused(beginCell().storeBuffer(s).storeRef(payload).endCell(), REGISTRY_ERR.badSignature);
        }
        expect(await reg.getSeqno()).toBe(0);
    });

    it('refuses a replay or a wrong seqno (201)', async () => {
        const b = body({ op: 'add', digest: digest('a'), entry: imageEntryCell(SNP) });
        await reg.sendExternal(b);
        await refused(b, REGISTRY_ERR.badSeqno);
        await refused(body({ op: 'remove', digest: digest('a') }, { seqno: 5 }), REGISTRY_ERR.badSeqno);
    });

    it('refuses an expired message (202)', async () => {
        await refused(body({ op: 'remove', digest: digest('a') }, { validUntil: T0 }), REGISTRY_ERR.expired);
    });

    it('refuses a message for another registry id (203)', async () => {
        await refused(body({ op: 'remove', digest: digest('a') }, { registryId: REGISTRY_ID + 1 }), REGISTRY_ERR.wrongRegistry);
    });

    it('refuses adding a present digest (204) and removing an absent one (205)', async () => {
        await reg.sendExternal(body({ op: 'add', digest: digest('a'), entry: imageEntryCell(SNP) }));
        await refused(body({ op: 'add', digest: digest('a'), entry: imageEntryCell(TDX) }, { seqno: 1 }), REGISTRY_ERR.alreadyPresent);
        await refused(body({ op: 'remove', digest: digest('z') }, { seqno: 1 }), REGISTRY_ERR.notFound);
        expect(parseImageEntry((await reg.getImage(digest('a')))!)).toEqual(SNP);
    });

    it('refuses an unknown op (206) and a malformed entry (9)', async () => {
        const p = beginCell().storeUint(REGISTRY_ID, 32).storeUint(0, 32).storeUint(T0 + 60, 32).storeUint(0x12345678, 32).endCell();
        await refused(signedRegistryBody(p, owner.secretKey), REGISTRY_ERR.unknownOp);
        const bad = beginCell().storeUint(1, 1).storeUint(0, 8).endCell(); // a measurement of 8 bits, no refs
        await refused(body({ op: 'add', digest: digest('a'), entry: bad }), 9);
    });

    describe('add checks the cells an entry refers to and that it names a measurement', () => {
        // an entry cell as imageEntryCell writes it, with any of its parts replaced
        const rawEntry = (o: { head?: (b: Builder) => void; rtmrs?: Cell; modelId?: Cell; label?: Cell }) => {
            const b = beginCell();
            if (o.head) o.head(b); else b.storeBit(1).storeBuffer(b48('snp')).storeBit(0);
            return b.storeRef(o.rtmrs ?? beginCell().storeUint(0, 2).endCell())
                .storeRef(o.modelId ?? textCell('sha256:00')).storeRef(o.label ?? textCell('label'))
                .endCell();
        };
        const mrtdHead = (b: Builder) => b.storeBit(0).storeBit(1).storeBuffer(b48('mrtd'));
        // a snake chain of n cells, each with `bytes` bytes (and `extraBits` more bits in cell `at`)
        const snake = (n: number, o: { bytes?: number; extraBits?: number; at?: number } = {}): Cell => {
            let c: Cell | null = null;
            for (let i = n - 1; i >= 0; i--) {
                const b = beginCell().storeBuffer(Buffer.alloc(o.bytes ?? 3, 0x61));
                if (o.extraBits && i === (o.at ?? 0)) b.storeUint(0, o.extraBits);
                if (c) b.storeRef(c);
                c = b.endCell();
            }
            return c!;
        };
        const add = (entry: Cell, seqno = 0) => reg.sendExternal(body({ op: 'add', digest: digest('a'), entry }, { seqno }));
        const accepted = async (entry: Cell) => {
            await add(entry);
            expect((await reg.getImage(digest('a')))!.hash()).toEqual(entry.hash());
            expect(await reg.getSeqno()).toBe(1);
        };
        const refusedEntry = async (entry: Cell, exitCode: number) => {
            await refused(body({ op: 'add', digest: digest('a'), entry }), exitCode);
            expect(await reg.getImage(digest('a'))).toBeNull();
        };

        it('refuses an RTMR cell that does not parse exactly (208); accepts each exact form', async () => {
            const r48 = b48('rtmr1');
            const mrtdRtmrs = (rtmrs: Cell) => rawEntry({ head: mrtdHead, rtmrs });
            for (const bad of [
                Cell.EMPTY,                                                           // no flags at all
                beginCell().storeBit(0).endCell(),                                    // one flag only
                beginCell().storeUint(0, 3).endCell(),                                // a bit left over
                beginCell().storeBit(1).storeBuffer(r48.subarray(0, 47)).storeBit(0).endCell(), // short RTMR1
                beginCell().storeBit(1).storeBuffer(r48).endCell(),                   // RTMR2's flag missing
                beginCell().storeBit(0).storeBit(1).storeBuffer(r48).storeBit(1).endCell(), // a bit after RTMR2
                beginCell().storeUint(0, 2).storeRef(Cell.EMPTY).endCell(),           // a ref left over
            ]) {
                await refusedEntry(mrtdRtmrs(bad), REGISTRY_ERR.badRtmrs);
            }
            await refusedEntry(rawEntry({ rtmrs: beginCell().storeUint(0, 3).endCell() }), REGISTRY_ERR.badRtmrs); // SNP only
            for (const [i, e] of [
                { tdxMrtd: b48('mrtd'), modelId: 'm', label: 'l' },
                { tdxMrtd: b48('mrtd'), tdxRtmr1: r48, modelId: 'm', label: 'l' },
                { tdxMrtd: b48('mrtd'), tdxRtmr2: r48, modelId: 'm', label: 'l' },
                { tdxMrtd: b48('mrtd'), tdxRtmr1: r48, tdxRtmr2: b48('rtmr2'), modelId: 'm', label: 'l' },
            ].entries()) {
                await reg.sendExternal(body({ op: 'add', digest: digest('ok' + i), entry: imageEntryCell(e) }, { seqno: i }));
                expect(parseImageEntry((await reg.getImage(digest('ok' + i)))!)).toEqual(e);
            }
        });

        it('refuses a model_id or label that is not byte-aligned snake text (209), or longer than 4 cells (212)', async () => {
            for (const t of [
                beginCell().storeUint(0x61, 7).endCell(),                // 7 bits
                snake(1, { bytes: 0, extraBits: 1 }),                      // 1 bit
                snake(2, { extraBits: 4, at: 1 }),                        // second cell 28 bits
                snake(4, { extraBits: 1, at: 3 }),                        // the 4th (last allowed) cell 25 bits
                beginCell().storeStringTail('ab').storeRef(Cell.EMPTY).storeRef(Cell.EMPTY).endCell(), // two refs
                beginCell().storeBuffer(Buffer.from('ab')).storeRef(
                    beginCell().storeBuffer(Buffer.from('c')).storeRef(Cell.EMPTY).storeRef(Cell.EMPTY).endCell()).endCell(), // two refs further on
            ]) {
                await refusedEntry(rawEntry({ modelId: t }), REGISTRY_ERR.badText);
                await refusedEntry(rawEntry({ label: t }), REGISTRY_ERR.badText);
            }
            await refusedEntry(rawEntry({ modelId: snake(5) }), REGISTRY_ERR.textTooLong);
            await refusedEntry(rawEntry({ label: snake(5) }), REGISTRY_ERR.textTooLong);
            await refusedEntry(rawEntry({ label: snake(5, { bytes: 0 }) }), REGISTRY_ERR.textTooLong); // 5 empty cells
            // 4 cells, 127 bytes each (508 bytes, as storeStringTail writes it), an empty text, and a
            // multi-byte character split across cells are accepted
            const long = 'é'.repeat(254);
            const e: ImageEntry = { snpLaunchDigest: b48('snp'), modelId: '', label: long };
            expect(textCell(long).depth()).toBe(3);
            await accepted(imageEntryCell(e));
            expect(parseImageEntry((await reg.getImage(digest('a')))!)).toEqual(e);
            // the largest entry (every measurement, both texts 4 full cells) fits the external gas credit
            const big: ImageEntry = {
                snpLaunchDigest: b48('snp'), tdxMrtd: b48('mrtd'), tdxRtmr1: b48('rtmr1'), tdxRtmr2: b48('rtmr2'),
                modelId: 'm'.repeat(508), label: 'l'.repeat(508),
            };
            expect(textCell(big.modelId).depth()).toBe(3);
            const r = await reg.sendExternal(body({ op: 'add', digest: digest('c'), entry: imageEntryCell(big) }, { seqno: 1 }));
            gas.record('add image (largest: SNP + TDX, 4-cell texts)', txOn(r, reg.address));
            expect(parseImageEntry((await reg.getImage(digest('c')))!)).toEqual(big);
        });

        it('refuses an entry with neither an SNP launch digest nor an MRTD (210)', async () => {
            await refusedEntry(rawEntry({ head: (b) => b.storeUint(0, 2) }), REGISTRY_ERR.noMeasurement);
            await refusedEntry(imageEntryCell({ modelId: 'm', label: 'l' }), REGISTRY_ERR.noMeasurement);
            await accepted(imageEntryCell({ snpLaunchDigest: b48('snp'), modelId: 'm', label: 'l' }));
        });

        it('refuses RTMRs without an MRTD (211), even beside an SNP launch digest', async () => {
            for (const e of [
                { snpLaunchDigest: b48('snp'), tdxRtmr1: b48('rtmr1'), modelId: 'm', label: 'l' },
                { snpLaunchDigest: b48('snp'), tdxRtmr2: b48('rtmr2'), modelId: 'm', label: 'l' },
                { snpLaunchDigest: b48('snp'), tdxRtmr1: b48('rtmr1'), tdxRtmr2: b48('rtmr2'), modelId: 'm', label: 'l' },
            ]) {
                await refusedEntry(imageEntryCell(e), REGISTRY_ERR.rtmrsWithoutMrtd);
            }
            await accepted(imageEntryCell({ snpLaunchDigest: b48('snp'), tdxMrtd: b48('mrtd'), tdxRtmr1: b48('rtmr1'), modelId: 'm', label: 'l' }));
        });
    });

    it('accepts an internal top-up (empty body) and refuses any other internal message (207), even the owner\'s signed body', async () => {
        const r = await reg.sendInternal(anyone.getSender(), toNano('1'), Cell.EMPTY);
        expect(r.transactions).toHaveTransaction({ from: anyone.address, to: reg.address, success: true });
        const b = body({ op: 'add', digest: digest('a'), entry: imageEntryCell(SNP) });
        const r2 = await reg.sendInternal(anyone.getSender(), toNano('1'), b);
        expect(r2.transactions).toHaveTransaction({ from: anyone.address, to: reg.address, success: false, exitCode: REGISTRY_ERR.internalRefused });
        expect(await reg.getImage(digest('a'))).toBeNull();
    });
});
