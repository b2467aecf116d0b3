#!/usr/bin/env node
// Compiles contracts/*.sol with solcjs (the npm `solc` package, pinned in package.json) into
// contracts/artifacts/<Name>.json: abi, bytecode, deployedBytecode, immutable references, the
// compiler version and settings, and the source's sha256.
//
//   node contracts/build.mjs           rebuild the artifacts (writes only what changed)
//   node contracts/build.mjs --check   exit 1 if the committed artifacts differ from a rebuild
//
// The output is deterministic: fixed settings, sorted inputs, a fixed key order, and the
// compiler's version checked, so a rebuild of unchanged sources is byte-identical.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const SOLC_VERSION = '0.8.28+commit.7893614a';
const SETTINGS = {
  // Pinned rather than "latest", so that a compiler bump cannot silently change the target.
  evmVersion: 'cancun',
  optimizer: { enabled: true, runs: 200 },
};
const OUTPUTS = ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object',
  'evm.deployedBytecode.immutableReferences'];

const HERE = dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = join(HERE, 'artifacts');
const solc = createRequire(import.meta.url)('solc');

function sha256(text) {
  return createHash('sha256').update(text).digest('hex');
}

function sources() {
  const names = readdirSync(HERE).filter((n) => n.endsWith('.sol')).sort();
  return Object.fromEntries(names.map((n) => [n, { content: readFileSync(join(HERE, n), 'utf8') }]));
}

// Imports resolve inside contracts/ only: no node_modules, no remappings.
function findImport(path) {
  const full = normalize(join(HERE, path));
  if (relative(HERE, full).startsWith('..') || !existsSync(full)) return { error: `not found: ${path}` };
  return { contents: readFileSync(full, 'utf8') };
}

function compile(input) {
  const version = solc.version();
  if (!version.startsWith(SOLC_VERSION)) {
    throw new Error(`solc ${version} is not the pinned ${SOLC_VERSION}: run npm install`);
  }
  const request = {
    language: 'Solidity',
    sources: input,
    settings: { ...SETTINGS, outputSelection: { '*': { '*': OUTPUTS } } },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(request), { import: findImport }));
  const problems = output.errors ?? [];
  for (const p of problems) process.stderr.write(p.formattedMessage ?? `${p.severity}: ${p.message}\n`);
  if (problems.some((p) => p.severity === 'error')) throw new Error('compilation failed');
  return output;
}

function artifacts() {
  const input = sources();
  const output = compile(input);
  const files = new Map();
  for (const sourceName of Object.keys(output.contracts ?? {}).sort()) {
    if (!(sourceName in input)) continue; // an imported file's contracts belong to its own artifact
    for (const [name, c] of Object.entries(output.contracts[sourceName]).sort(([a], [b]) => a.localeCompare(b))) {
      const doc = {
        contractName: name,
        sourceName,
        sourceSha256: sha256(input[sourceName].content),
        compiler: { name: 'solc', version: SOLC_VERSION, settings: SETTINGS },
        abi: c.abi,
        bytecode: `0x${c.evm.bytecode.object}`,
        deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
        immutableReferences: c.evm.deployedBytecode.immutableReferences ?? {},
      };
      if (files.has(`${name}.json`)) throw new Error(`two contracts named ${name}`);
      files.set(`${name}.json`, `${JSON.stringify(doc, null, 2)}\n`);
    }
  }
  return files;
}

function committed() {
  if (!existsSync(ARTIFACTS)) return new Map();
  const names = readdirSync(ARTIFACTS).filter((n) => n.endsWith('.json')).sort();
  return new Map(names.map((n) => [n, readFileSync(join(ARTIFACTS, n), 'utf8')]));
}

function main(argv) {
  const check = argv.includes('--check');
  const want = artifacts();
  const have = committed();
  const stale = [...want].filter(([n, text]) => have.get(n) !== text).map(([n]) => n);
  const extra = [...have.keys()].filter((n) => !want.has(n));
  if (check) {
    if (stale.length || extra.length) {
      const what = [...stale.map((n) => `${n} (stale or missing)`), ...extra.map((n) => `${n} (no source)`)];
      process.stderr.write(`contracts/artifacts are out of date: ${what.join(', ')}\n`
        + 'run `node contracts/build.mjs` and commit the result\n');
      return 1;
    }
    process.stdout.write(`contracts/artifacts are up to date (${want.size} contracts)\n`);
    return 0;
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const n of stale) {
    const tmp = join(ARTIFACTS, `.${n}.tmp`);
    writeFileSync(tmp, want.get(n));
    renameSync(tmp, join(ARTIFACTS, n));
  }
  for (const n of extra) rmSync(join(ARTIFACTS, n));
  process.stdout.write(`contracts/artifacts: ${stale.length} written, ${extra.length} removed, `
    + `${want.size - stale.length} unchanged\n`);
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`contracts/build.mjs: ${err.message}\n`);
  process.exitCode = 2;
}
