import {
    Address, beginCell, Builder, Cell, Contract, contractAddress, ContractProvider, Dictionary,
    Sender, SendMode, Slice,
} from '@ton/core';
import { sign } from '@ton/crypto';

export const REGISTRY_OP = { addImage: 0x73696c11, removeImage: 0x73696c12 } as const;
export const REGISTRY_ERR = {
    badSignature: 200, badSeqno: 201, expired: 202, wrongRegistry: 203,
    alreadyPresent: 204, notFound: 205, unknownOp: 206, internalRefused: 207,
    badRtmrs: 208, badText: 209, noMeasurement: 210, rtmrsWithoutMrtd: 211, textTooLong: 212,
} as const;

export type ImageEntry = {
    snpLaunchDigest?: Buffer; // 48 bytes
    tdxMrtd?: Buffer;         // 48 bytes
    tdxRtmr1?: Buffer;        // 48 bytes
    tdxRtmr2?: Buffer;        // 48 bytes
    modelId: string;          // e.g. "sha256:<hex>"
    label: string;
};

/** Text: UTF-8 bytes in a snake cell (127 bytes per cell, the rest in ref 0). */
export function textCell(s: string): Cell {
    return beginCell().storeStringTail(s).endCell();
}
export function readText(c: Cell): string {
    return c.beginParse().loadStringTail();
}

function storeMaybe384(b: Builder, v?: Buffer) {
    if (v === undefined) {
        b.storeBit(0);
    } else {
        if (v.length !== 48) throw new Error('measurement must be 48 bytes');
        b.storeBit(1).storeBuffer(v);
    }
}
function loadMaybe384(s: Slice): Buffer | undefined {
    return s.loadBit() ? s.loadBuffer(48) : undefined;
}

/** ImageEntry cell: snp:(Maybe bits384) mrtd:(Maybe bits384) ^[rtmr1:(Maybe bits384) rtmr2:(Maybe bits384)] ^model_id ^label */
export function imageEntryCell(e: ImageEntry): Cell {
    const rtmrs = beginCell();
    storeMaybe384(rtmrs, e.tdxRtmr1);
    storeMaybe384(rtmrs, e.tdxRtmr2);
    const b = beginCell();
    storeMaybe384(b, e.snpLaunchDigest);
    storeMaybe384(b, e.tdxMrtd);
    return b.storeRef(rtmrs.endCell()).storeRef(textCell(e.modelId)).storeRef(textCell(e.label)).endCell();
}

export function parseImageEntry(c: Cell): ImageEntry {
    const s = c.beginParse();
    const snpLaunchDigest = loadMaybe384(s);
    const tdxMrtd = loadMaybe384(s);
    const r = s.loadRef().beginParse();
    const tdxRtmr1 = loadMaybe384(r);
    const tdxRtmr2 = loadMaybe384(r);
    const modelId = readText(s.loadRef());
    const label = readText(s.loadRef());
    const e: ImageEntry = { modelId, label };
    if (snpLaunchDigest) e.snpLaunchDigest = snpLaunchDigest;
    if (tdxMrtd) e.tdxMrtd = tdxMrtd;
    if (tdxRtmr1) e.tdxRtmr1 = tdxRtmr1;
    if (tdxRtmr2) e.tdxRtmr2 = tdxRtmr2;
    return e;
}

export type RegistryConfig = { registryId: number; seqno?: number; ownerKey: Buffer };

export function registryData(c: RegistryConfig): Cell {
    return beginCell()
        .storeUint(c.registryId, 32)
        .storeUint(c.seqno ?? 0, 32)
        .storeBuffer(c.ownerKey, 32)
        .storeDict(null)
        .endCell();
}

export type RegistryAction =
    | { op: 'add'; digest: bigint; entry: Cell }
    | { op: 'remove'; digest: bigint };

/** The signed payload: registry_id:uint32 seqno:uint32 valid_until:uint32 op:uint32 digest:uint256 [^ImageEntry] */
export function registryPayload(registryId: number, seqno: number, validUntil: number, a: RegistryAction): Cell {
    const b = beginCell().storeUint(registryId, 32).storeUint(seqno, 32).storeUint(validUntil, 32);
    if (a.op === 'add') {
        b.storeUint(REGISTRY_OP.addImage, 32).storeUint(a.digest, 256).storeRef(a.entry);
    } else {
        b.storeUint(REGISTRY_OP.removeImage, 32).storeUint(a.digest, 256);
    }
    return b.endCell();
}

/** External message body: signature:bits512 ^payload, signature = Ed25519(payload cell hash). */
export function signedRegistryBody(payload: Cell, secretKey: Buffer): Cell {
    return beginCell().storeBuffer(sign(payload.hash(), secretKey)).storeRef(payload).endCell();
}

export class Registry implements Contract {
    constructor(readonly address: Address, readonly init?: { code: Cell; data: Cell }) {}

    static createFromConfig(config: RegistryConfig, code: Cell, workchain = 0) {
        const data = registryData(config);
        const init = { code, data };
        return new Registry(contractAddress(workchain, init), init);
    }

    async sendDeploy(provider: ContractProvider, via: Sender, value: bigint) {
        await provider.internal(via, { value, sendMode: SendMode.PAY_GAS_SEPARATELY, body: Cell.EMPTY });
    }

    async sendInternal(provider: ContractProvider, via: Sender, value: bigint, body: Cell) {
        await provider.internal(via, { value, sendMode: SendMode.PAY_GAS_SEPARATELY, body });
    }

    async sendExternal(provider: ContractProvider, body: Cell) {
        await provider.external(body);
    }

    async getSeqno(provider: ContractProvider): Promise<number> {
        return (await provider.get('seqno', [])).stack.readNumber();
    }
    async getOwnerKey(provider: ContractProvider): Promise<bigint> {
        return (await provider.get('owner_key', [])).stack.readBigNumber();
    }
    async getRegistryId(provider: ContractProvider): Promise<number> {
        return (await provider.get('registry_id', [])).stack.readNumber();
    }
    async getImages(provider: ContractProvider): Promise<Dictionary<bigint, Cell>> {
        const c = (await provider.get('images', [])).stack.readCellOpt();
        return Dictionary.loadDirect(Dictionary.Keys.BigUint(256), Dictionary.Values.Cell(), c);
    }
    async getImage(provider: ContractProvider, digest: bigint): Promise<Cell | null> {
        return (await provider.get('image', [{ type: 'int', value: digest }])).stack.readCellOpt();
    }
}
