// Writes fixtures/registry-state.json (toncenter v2 getAddressInformation shape: the registry's
// balance, code and data BoCs, last transaction) and fixtures/registry-entries.json (the entries
// it holds, the ground truth for the Rust `silk policy from-ton` reader). Deterministic: see
// scripts/registry-dump.ts. tests/registry-dump.spec.ts checks both still match.
//   npm run registry-dump
require('./ts-require');
const fs = require('fs');
const path = require('path');
const { buildRegistryDump } = require('./registry-dump.ts');

const FIXTURES = path.join(__dirname, '..', 'fixtures');

buildRegistryDump().then((d) => {
    fs.writeFileSync(path.join(FIXTURES, 'registry-state.json'), JSON.stringify(d.state, null, 2) + '\n');
    fs.writeFileSync(path.join(FIXTURES, 'registry-entries.json'), JSON.stringify(d.entries, null, 2) + '\n');
    console.log(`registry ${d.entries.address}: ${d.entries.entries.length} entries, data hash ${d.data.hash().toString('hex')}`);
}).catch((e) => {
    console.error(e);
    process.exit(1);
});
