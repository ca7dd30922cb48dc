// Lets the plain-node scripts require the TypeScript wrappers (wrappers/*.ts, scripts/*.ts)
// so that the cells they write come from the same encoder the tests use, not a copy.
// TypeScript is already a dev dependency (ts-jest); this only strips the types, no checking.
const fs = require('fs');
const ts = require('typescript');

require.extensions['.ts'] = (module, filename) => {
    const out = ts.transpileModule(fs.readFileSync(filename, 'utf-8'), {
        compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
        fileName: filename,
    });
    module._compile(out.outputText, filename);
};
