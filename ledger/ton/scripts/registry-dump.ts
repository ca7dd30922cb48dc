// A deterministic registry with three entries, and its state in the shape of toncenter's v2
// getAddressInformation answer: the input for the Rust `silk policy from-ton` tests.
// Shared by scripts/make-registry-dump.js (writes the fixtures) and tests/registry-dump.spec.ts
// (checks the committed fixtures are still what this builds). Fixed keys, fixed time, a fixed
// deployer: the same data cell on every run.
import { Blockchain, SandboxContract } from '@ton/sandbox';
import { Cell, toNano } from '@ton/core';
import { keyPairFromSeed, sha256_sync } from '@ton/crypto';
import { createHash } from 'crypto';
import { compileTolk } from '../wrappers/compile';
import { ImageEntry, imageEntryCell, Registry, registryPayload, signedRegistryBody } from '../wrappers/Registry';

export const DUMP_NOW = 1_800_000_000;
export const DUMP_REGISTRY_ID = 0x511c_d0_01;

const sha384 = (tag: string) => createHash('sha384').update(tag).digest(); // a 48-byte measurement
const sha256hex = (tag: string) => sha256_sync(tag).toString('hex');

// The TDX label spans two cells (127 data bytes each) and a two-byte 'é' straddles the boundary
// (bytes 126 and 127): a reader must join the cells' bytes before decoding UTF-8.
const TDX_LABEL = (() => {
    const head = 'silk demo tdx: Intel TDX guest, measured by MRTD, RTMR1 (firmware and kernel) and RTMR2 (command line); ';
    const s = head.padEnd(126, '.') + 'é' + ' — the label is longer than one cell';
    if (Buffer.from(s).subarray(126, 128).toString() !== 'é') throw new Error('label layout changed');
    return s;
})();

export const DUMP_ENTRIES: { digest: bigint; entry: ImageEntry }[] = [
    {
        digest: BigInt('0x' + sha256hex('silk demo image snp')),
        entry: { snpLaunchDigest: sha384('snp launch'), modelId: 'sha256:' + sha256hex('silk demo model a'), label: 'silk demo snp' },
    },
    {
        digest: BigInt('0x' + sha256hex('silk demo image tdx')),
        entry: {
            tdxMrtd: sha384('tdx mrtd'), tdxRtmr1: sha384('tdx rtmr1'), tdxRtmr2: sha384('tdx rtmr2'),
            modelId: 'sha256:' + sha256hex('silk demo model b'), label: TDX_LABEL,
        },
    },
    {
        digest: BigInt('0x' + sha256hex('silk demo image snp+tdx')),
        entry: {
            snpLaunchDigest: sha384('both snp launch'), tdxMrtd: sha384('both tdx mrtd'),
            tdxRtmr1: sha384('both tdx rtmr1'), tdxRtmr2: sha384('both tdx rtmr2'),
            modelId: 'sha256:' + sha256hex('silk demo model a'), label: 'silk demo snp+tdx',
        },
    },
];

export type EntryJson = {
    digest: string; snp_launch_digest: string | null; tdx_mrtd: string | null;
    tdx_rtmr1: string | null; tdx_rtmr2: string | null; model_id: string; label: string;
};

const hexOrNull = (b?: Buffer) => (b ? b.toString('hex') : null);
export function entryJson(digest: bigint, e: ImageEntry): EntryJson {
    return {
        digest: digest.toString(16).padStart(64, '0'),
        snp_launch_digest: hexOrNull(e.snpLaunchDigest), tdx_mrtd: hexOrNull(e.tdxMrtd),
        tdx_rtmr1: hexOrNull(e.tdxRtmr1), tdx_rtmr2: hexOrNull(e.tdxRtmr2),
        model_id: e.modelId, label: e.label,
    };
}
export const sortByDigest = (es: EntryJson[]) => [...es].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));

export type RegistryDump = {
    bc: Blockchain;
    reg: SandboxContract<Registry>;
    code: Cell;
    data: Cell;
    /** fixtures/registry-state.json */
    state: object;
    /** fixtures/registry-entries.json */
    entries: { address: string; registry_id: number; seqno: number; owner_key: string; entries: EntryJson[] };
};

export async function buildRegistryDump(): Promise<RegistryDump> {
    const owner = keyPairFromSeed(sha256_sync('silk registry dump owner'));
    const code = await compileTolk('registry');
    const bc = await Blockchain.create();
    bc.now = DUMP_NOW;
    const deployer = await bc.treasury('silk registry dump deployer');
    const reg = bc.openContract(Registry.createFromConfig({ registryId: DUMP_REGISTRY_ID, ownerKey: owner.publicKey }, code));
    await reg.sendDeploy(deployer.getSender(), toNano('1'));
    for (const [seqno, { digest, entry }] of DUMP_ENTRIES.entries()) {
        const payload = registryPayload(DUMP_REGISTRY_ID, seqno, DUMP_NOW + 60, { op: 'add', digest, entry: imageEntryCell(entry) });
        await reg.sendExternal(signedRegistryBody(payload, owner.secretKey));
    }

    const sc = await bc.getContract(reg.address);
    const st = sc.account.account?.storage.state;
    if (!st || st.type !== 'active' || !st.state.code || !st.state.data) throw new Error('registry is not active');
    const data = st.state.data;
    const state = {
        ok: true,
        result: {
            '@type': 'raw.fullAccountState',
            balance: sc.balance.toString(),
            extra_currencies: [],
            code: st.state.code.toBoc().toString('base64'),
            data: data.toBoc().toString('base64'),
            last_transaction_id: {
                '@type': 'internal.transactionId',
                lt: sc.lastTransactionLt.toString(),
                hash: Buffer.from(sc.lastTransactionHash.toString(16).padStart(64, '0'), 'hex').toString('base64'),
            },
            frozen_hash: '',
            sync_utime: DUMP_NOW,
            state: 'active',
        },
    };
    const entries = {
        address: reg.address.toRawString(),
        registry_id: DUMP_REGISTRY_ID,
        seqno: DUMP_ENTRIES.length,
        owner_key: owner.publicKey.toString('hex'),
        entries: sortByDigest(DUMP_ENTRIES.map(({ digest, entry }) => entryJson(digest, entry))),
    };
    return { bc, reg, code: st.state.code, data, state, entries };
}

