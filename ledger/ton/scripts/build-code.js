// Writes build/channel.code.boc and build/registry.code.boc: the compiled code cells, binary
// BoC (@ton/core toBoc defaults). They are committed because the Rust side include_bytes! them to
// build deploy messages and derive channel addresses; tests/code.spec.ts fails when a .tolk
// source changed and they were not rebuilt.
//   npm run build-code
require('./ts-require');
const fs = require('fs');
const path = require('path');
const { compileTolk } = require('../wrappers/compile.ts');

const BUILD = path.join(__dirname, '..', 'build');

(async () => {
    fs.mkdirSync(BUILD, { recursive: true });
    for (const name of ['channel', 'registry']) {
        const code = await compileTolk(name);
        const file = path.join(BUILD, `${name}.code.boc`);
        fs.writeFileSync(file, code.toBoc());
        console.log(`${path.relative(process.cwd(), file)}: code hash ${code.hash().toString('hex')}`);
    }
})().catch((e) => {
    console.error(e);
    process.exit(1);
});
