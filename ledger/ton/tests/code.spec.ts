// The committed code BoCs (build/*.code.boc) must be what the .tolk sources compile to today:
// the Rust side include_bytes! them to deploy channels and derive their addresses, so a stale
// file would deploy old code at an address the TS side does not compute.
import { Cell } from '@ton/core';
import * as fs from 'fs';
import * as path from 'path';
import { compileTolk } from '../wrappers/compile';

const BUILD = path.join(__dirname, '..', 'build');

describe('committed code BoCs', () => {
    it.each(['channel', 'registry'])('build/%s.code.boc is the compiled contract', async (name) => {
        const file = path.join(BUILD, `${name}.code.boc`);
        const fix = 'run `npm run build-code` (in ledger/ton) and commit build/*.code.boc';
        if (!fs.existsSync(file)) throw new Error(`${file} is missing: ${fix}`);
        const roots = Cell.fromBoc(fs.readFileSync(file));
        if (roots.length !== 1) throw new Error(`${file} has ${roots.length} root cells, expected 1: ${fix}`);
        const compiled = await compileTolk(name);
        const committed = roots[0].hash().toString('hex');
        if (committed !== compiled.hash().toString('hex')) {
            throw new Error(`${file} is stale (hash ${committed}, contracts/${name}.tolk compiles to ` +
                `${compiled.hash().toString('hex')}): ${fix}`);
        }
    });
});
