// The committed registry dump (fixtures/registry-state.json, fixtures/registry-entries.json) is the
// Rust `silk policy from-ton` reader's test input: it must still be what the registry holds after the
// deterministic run in scripts/registry-dump.ts, and its data cell must decode to the entries file
// both through the contract's images() get-method and read directly, as an off-chain reader does.
import { Cell, Dictionary } from '@ton/core';
import * as fs from 'fs';
import * as path from 'path';
import { parseImageEntry } from '../wrappers/Registry';
import { buildRegistryDump, entryJson, EntryJson, RegistryDump, sortByDigest } from '../scripts/registry-dump';

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const FIX = 'run `npm run registry-dump` (in ledger/ton) and commit fixtures/registry-*.json';
const read = (f: string) => {
    const file = path.join(FIXTURES, f);
    if (!fs.existsSync(file)) throw new Error(`${file} is missing: ${FIX}`);
    return JSON.parse(fs.readFileSync(file, 'utf-8'));
};

const decode = (dict: Dictionary<bigint, Cell>): EntryJson[] =>
    sortByDigest([...dict].map(([digest, c]) => entryJson(digest, parseImageEntry(c))));

describe('registry dump fixture', () => {
    let d: RegistryDump;
    let state: any;
    let entries: any;

    beforeAll(async () => {
        d = await buildRegistryDump();
        state = read('registry-state.json');
        entries = read('registry-entries.json');
    });

    it('registry-state.json has the getAddressInformation shape', () => {
        expect(state.ok).toBe(true);
        expect(state.result['@type']).toBe('raw.fullAccountState');
        expect(state.result.state).toBe('active');
        expect(state.result.balance).toMatch(/^[0-9]+$/);
        expect(state.result.last_transaction_id['@type']).toBe('internal.transactionId');
        expect(state.result.last_transaction_id.lt).toMatch(/^[0-9]+$/);
        expect(Buffer.from(state.result.last_transaction_id.hash, 'base64').length).toBe(32);
    });

    it('its code is the compiled registry and its data cell is the rebuilt one', () => {
        const code = Cell.fromBoc(Buffer.from(state.result.code, 'base64'))[0];
        const data = Cell.fromBoc(Buffer.from(state.result.data, 'base64'))[0];
        if (!code.hash().equals(d.code.hash())) throw new Error(`registry-state.json code is stale: ${FIX}`);
        if (!data.hash().equals(d.data.hash())) {
            throw new Error(`registry-state.json data hash ${data.hash().toString('hex')}, rebuilt ${d.data.hash().toString('hex')}: ${FIX}`);
        }
    });

    it('registry-entries.json is the rebuilt ground truth', () => {
        expect(entries).toEqual(d.entries);
        expect(entries.entries.length).toBe(3);
    });

    it('get-methods on the rebuilt registry give the entries file exactly', async () => {
        expect(d.reg.address.toRawString()).toBe(entries.address);
        expect(await d.reg.getRegistryId()).toBe(entries.registry_id);
        expect(await d.reg.getSeqno()).toBe(entries.seqno);
        expect((await d.reg.getOwnerKey()).toString(16).padStart(64, '0')).toBe(entries.owner_key);
        expect(decode(await d.reg.getImages())).toEqual(entries.entries);
    });

    it('the committed data cell, read off-chain (registry_id seqno owner_key images), gives the entries file', () => {
        const s = Cell.fromBoc(Buffer.from(state.result.data, 'base64'))[0].beginParse();
        expect(s.loadUint(32)).toBe(entries.registry_id);
        expect(s.loadUint(32)).toBe(entries.seqno);
        expect(s.loadBuffer(32).toString('hex')).toBe(entries.owner_key);
        const dict = s.loadDict(Dictionary.Keys.BigUint(256), Dictionary.Values.Cell());
        s.endParse();
        expect(decode(dict)).toEqual(entries.entries);
    });
});
