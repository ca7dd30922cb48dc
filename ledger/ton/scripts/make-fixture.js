// Writes fixtures/promises.json: signed promises made with @ton/crypto keys, in the
// format the cross-language test reads (the Rust side will write the same format).
//   node scripts/make-fixture.js [out.json]
const { beginCell } = require('@ton/core');
const { keyPairFromSeed, sha256_sync, sign } = require('@ton/crypto');
const fs = require('fs');
const path = require('path');

const out = process.argv[2] || path.join(__dirname, '..', 'fixtures', 'promises.json');
const key = keyPairFromSeed(sha256_sync('silk fixture payer'));
const channelId = sha256_sync('silk fixture channel 1');
const rows = [
    [1n, 1n],
    [3n, 2_500_000_001n],
    [18446744073709551615n, 9_999_999_999n], // max seqno (uint64)
].map(([seqno, amount]) => {
    const cell = beginCell().storeBuffer(channelId).storeUint(seqno, 64).storeCoins(amount).endCell();
    return {
        channel_id: channelId.toString('hex'),
        seqno: seqno.toString(),
        amount: amount.toString(),
        payer_pubkey: key.publicKey.toString('hex'),
        signature: sign(cell.hash(), key.secretKey).toString('hex'),
        promise_boc: cell.toBoc().toString('hex'), // informative; the test rebuilds the cell itself
    };
});
fs.writeFileSync(out, JSON.stringify(rows, null, 2) + '\n');
console.log(`wrote ${rows.length} promises to ${out}`);
