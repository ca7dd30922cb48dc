import {
    Address, beginCell, Cell, Contract, contractAddress, ContractProvider, Sender, SendMode,
} from '@ton/core';
import { sign } from '@ton/crypto';

export const CHANNEL_OP = {
    deposit: 0x73696c01, payeeClose: 0x73696c02, payerStartClose: 0x73696c03,
    dispute: 0x73696c04, finish: 0x73696c05,
} as const;

export const CHANNEL_ERR = {
    wrongSender: 100, badSignature: 101, seqnoNotHigher: 102, amountAboveDeposit: 103,
    wrongChannel: 104, closed: 105, alreadyClosing: 106, notExpired: 107, notClosing: 108,
    disputeOver: 109, disputeWindowOpen: 110, valueTooLow: 111, unknownOp: 112,
} as const;

export const CHANNEL_STATE = { open: 0, closing: 1, closed: 2 } as const;

/** Extra value a deposit must carry on top of its amount (the contract's own gas/storage). */
export const DEPOSIT_GAS = 10_000_000n;

export type ChannelConfig = {
    channelId: bigint;
    payer: Address;
    payerKey: Buffer; // 32 bytes
    payee: Address;
    disputeWindow: number; // seconds
    expiry: number; // unix time
};

export function channelData(c: ChannelConfig): Cell {
    const parties = beginCell()
        .storeAddress(c.payer)
        .storeBuffer(c.payerKey, 32)
        .storeAddress(c.payee)
        .endCell();
    return beginCell()
        .storeUint(c.channelId, 256)
        .storeCoins(0) // deposit
        .storeUint(c.disputeWindow, 32)
        .storeUint(c.expiry, 32)
        .storeUint(0, 8) // state: open
        .storeUint(0, 64) // best seqno
        .storeCoins(0) // best amount
        .storeUint(0, 32) // close started
        .storeRef(parties)
        .endCell();
}

/** The promise cell: channel_id:uint256 seqno:uint64 amount:Coins, no refs. */
export function promiseCell(channelId: bigint, seqno: bigint | number, amount: bigint): Cell {
    return beginCell().storeUint(channelId, 256).storeUint(seqno, 64).storeCoins(amount).endCell();
}

/** Ed25519 over the promise cell's representation hash (512-bit signature). */
export function signPromise(promise: Cell, secretKey: Buffer): Buffer {
    return sign(promise.hash(), secretKey);
}

export type SignedPromise = { promise: Cell; signature: Buffer };

export function depositBody(amount: bigint): Cell {
    return beginCell().storeUint(CHANNEL_OP.deposit, 32).storeCoins(amount).endCell();
}
export function payeeCloseBody(p: SignedPromise): Cell {
    return beginCell().storeUint(CHANNEL_OP.payeeClose, 32).storeRef(p.promise).storeBuffer(p.signature).endCell();
}
export function disputeBody(p: SignedPromise): Cell {
    return beginCell().storeUint(CHANNEL_OP.dispute, 32).storeRef(p.promise).storeBuffer(p.signature).endCell();
}
export function payerStartCloseBody(p?: SignedPromise): Cell {
    const b = beginCell().storeUint(CHANNEL_OP.payerStartClose, 32);
    if (p) {
        b.storeBit(1).storeRef(p.promise).storeBuffer(p.signature);
    } else {
        b.storeBit(0);
    }
    return b.endCell();
}
export function finishBody(): Cell {
    return beginCell().storeUint(CHANNEL_OP.finish, 32).endCell();
}

export type ChannelState = {
    state: number; deposit: bigint; bestSeqno: bigint; bestAmount: bigint;
    closeStarted: number; expiry: number; disputeWindow: number; channelId: bigint;
};

export class Channel implements Contract {
    constructor(readonly address: Address, readonly init?: { code: Cell; data: Cell }) {}

    static createFromConfig(config: ChannelConfig, code: Cell, workchain = 0) {
        const init = { code, data: channelData(config) };
        return new Channel(contractAddress(workchain, init), init);
    }

    async send(provider: ContractProvider, via: Sender, value: bigint, body: Cell) {
        await provider.internal(via, { value, sendMode: SendMode.PAY_GAS_SEPARATELY, body });
    }

    async getState(provider: ContractProvider): Promise<ChannelState> {
        const s = (await provider.get('channel_state', [])).stack;
        return {
            state: s.readNumber(), deposit: s.readBigNumber(), bestSeqno: s.readBigNumber(),
            bestAmount: s.readBigNumber(), closeStarted: s.readNumber(), expiry: s.readNumber(),
            disputeWindow: s.readNumber(), channelId: s.readBigNumber(),
        };
    }

    async getParties(provider: ContractProvider) {
        const s = (await provider.get('channel_parties', [])).stack;
        return { payer: s.readAddress(), payerKey: s.readBigNumber(), payee: s.readAddress() };
    }
}
