import { runTolkCompiler } from '@ton/tolk-js';
import { Cell } from '@ton/core';
import * as fs from 'fs';
import * as path from 'path';

const CONTRACTS = path.join(__dirname, '..', 'contracts');

/** Compiles contracts/<name>.tolk in-process (Tolk's WASM compiler) and returns the code cell. */
export async function compileTolk(name: string): Promise<Cell> {
    const result = await runTolkCompiler({
        entrypointFileName: `${name}.tolk`,
        fsReadCallback: (p: string) => fs.readFileSync(path.join(CONTRACTS, p), 'utf-8'),
    });
    if (result.status === 'error') {
        throw new Error(`tolk: ${result.message}`);
    }
    return Cell.fromBoc(Buffer.from(result.codeBoc64, 'base64'))[0];
}
