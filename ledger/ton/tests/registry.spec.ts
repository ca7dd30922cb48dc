import { Blockchain, SandboxContract, TreasuryContract } from '@ton/sandbox';
import { beginCell, Cell, toNano } from '@ton/core';
import { KeyPair, keyPairFromSeed, sha256_sync, sign } from '@ton/crypto';
import '@ton/test-utils';
import { compileTolk } from '../wrappers/compile';
import {
    ImageEntry, imageEntryCell, parseImageEntry, Registry, REGISTRY_ERR, registryPayload,
    RegistryAction, signedRegistryBody,
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

    it('accepts an internal top-up (empty body) and refuses any other internal message (207), even the owner\'s signed body', async () => {
        const r = await reg.sendInternal(anyone.getSender(), toNano('1'), Cell.EMPTY);
        expect(r.transactions).toHaveTransaction({ from: anyone.address, to: reg.address, success: true });
        const b = body({ op: 'add', digest: digest('a'), entry: imageEntryCell(SNP) });
        const r2 = await reg.sendInternal(anyone.getSender(), toNano('1'), b);
        expect(r2.transactions).toHaveTransaction({ from: anyone.address, to: reg.address, success: false, exitCode: REGISTRY_ERR.internalRefused });
        expect(await reg.getImage(digest('a'))).toBeNull();
    });
});
