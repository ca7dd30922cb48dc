import { Address, BitBuilder, Cell, Transaction, beginCell } from '@ton/core';
import { SendMessageResult } from '@ton/sandbox';

/** The transaction a message caused on `address` (the first one in the result). */
export function txOn(result: SendMessageResult, address: Address): Transaction {
    const tx = result.transactions.find((t) => t.inMessage?.info.dest instanceof Address && t.inMessage.info.dest.equals(address));
    if (!tx) throw new Error(`no transaction on ${address}`);
    return tx;
}

export function computeOf(tx: Transaction): { gasUsed: bigint; exitCode: number; success: boolean; gasFees: bigint } {
    if (tx.description.type !== 'generic') throw new Error('not a generic transaction');
    const c = tx.description.computePhase;
    if (c.type !== 'vm') throw new Error(`compute phase skipped: ${c.reason}`);
    return { gasUsed: c.gasUsed, exitCode: c.exitCode, success: c.success, gasFees: c.gasFees };
}

/** Collects gas per operation; printed as a markdown table at the end of a spec file. */
export class GasTable {
    rows = new Map<string, bigint>();
    record(op: string, tx: Transaction) {
        if (!this.rows.has(op)) this.rows.set(op, computeOf(tx).gasUsed);
    }
    print(title: string) {
        const lines = [`${title}`, '| operation | gas used |', '|---|---:|'];
        for (const [op, gas] of this.rows) lines.push(`| ${op} | ${gas} |`);
        console.log(lines.join('\n'));
    }
}

/** The same cell with data bit `i` flipped (refs kept). */
export function flipBit(c: Cell, i: number): Cell {
    const bb = new BitBuilder(c.bits.length);
    for (let k = 0; k < c.bits.length; k++) bb.writeBit(k === i ? !c.bits.at(k) : c.bits.at(k));
    const b = beginCell().storeBits(bb.build());
    for (const r of c.refs) b.storeRef(r);
    return b.endCell();
}

export function flipBufferBit(buf: Buffer, i: number): Buffer {
    const out = Buffer.from(buf);
    out[i >> 3] ^= 0x80 >> (i & 7);
    return out;
}
