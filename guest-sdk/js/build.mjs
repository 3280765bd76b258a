#!/usr/bin/env node
// sluice-js-build: builds a JavaScript transform into a WebAssembly component.
//
//   sluice-js-build app.js -o app.wasm [--wit transform.wit] [--bundle app.bundle.js]
//
// 1. esbuild bundles the author's module with this SDK (`sluice-transform` resolves to this
//    directory wherever the author's project is) into one ES module, in which the SDK's log
//    goes to the world's `log` import;
// 2. componentize-js turns that module into a component of the world `transformer`
//    (wit/transform.wit), with the WASI features a transform does not need left out (stdio
//    stays, so that `console.error` reaches the host's stderr).
//
// The tools come from SLUICE_JS_TOOLS (a directory whose node_modules holds
// @bytecodealliance/componentize-js and esbuild) if set, else from this package's
// node_modules (`npm ci` here). The WIT is `--wit`, else SLUICE_WIT, else ../../wit/transform.wit
// next to this file.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, copyFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const DISABLED = ['random', 'clocks', 'http', 'fetch-event'];

const USAGE = `usage: sluice-js-build <app.js> -o <out.wasm> [--wit <transform.wit>] [--bundle <file>]

  -o, --out      the component to write
  --wit          the WIT (default: $SLUICE_WIT, else ${resolve(here, '../../wit/transform.wit')})
  --bundle       also keep the bundled module there (stack traces' line numbers refer to it)`;

function fail(message) {
  console.error(`sluice-js-build: ${message}`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { app: null, out: null, wit: null, bundle: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value\n${USAGE}`);
      return argv[++i];
    };
    if (a === '-o' || a === '--out') opts.out = value();
    else if (a === '--wit') opts.wit = value();
    else if (a === '--bundle') opts.bundle = value();
    else if (a === '-h' || a === '--help') {
      console.log(USAGE);
      process.exit(0);
    } else if (a.startsWith('-')) fail(`unknown option ${a}\n${USAGE}`);
    else if (opts.app === null) opts.app = a;
    else fail(`one module at a time (got ${opts.app} and ${a})\n${USAGE}`);
  }
  if (opts.app === null || opts.out === null) fail(USAGE);
  return opts;
}

/** Directories whose node_modules may hold the tools, in order. */
function toolDirs() {
  const dirs = [];
  if (process.env.SLUICE_JS_TOOLS) dirs.push(resolve(process.env.SLUICE_JS_TOOLS));
  dirs.push(here);
  return dirs;
}

const NO_TOOLS = 'run `npm ci` in guest-sdk/js, or set SLUICE_JS_TOOLS to a directory whose node_modules holds @bytecodealliance/componentize-js and esbuild';

function findComponentize() {
  for (const d of toolDirs()) {
    const bin = join(d, 'node_modules', '.bin', 'componentize-js');
    if (existsSync(bin)) return bin;
  }
  return fail(`cannot find componentize-js: ${NO_TOOLS}`);
}

function loadEsbuild() {
  for (const d of toolDirs()) {
    if (existsSync(join(d, 'node_modules', 'esbuild', 'package.json'))) {
      return createRequire(join(d, 'node_modules', 'x.js'))('esbuild');
    }
  }
  return fail(`cannot find esbuild: ${NO_TOOLS}`);
}

function findWit(given) {
  const wit = resolve(given ?? process.env.SLUICE_WIT ?? join(here, '../../wit/transform.wit'));
  if (!existsSync(wit)) fail(`no WIT at ${wit}: pass --wit or set SLUICE_WIT`);
  return wit;
}

/** esbuild plugin: `sluice-transform` is this directory; its log goes to the `log` import. */
function sdkPlugin() {
  const lib = join(here, 'lib');
  return {
    name: 'sluice-transform',
    setup(b) {
      b.onResolve({ filter: /^sluice-transform(\/testing)?$/ }, (a) => ({
        path: join(here, a.path === 'sluice-transform' ? 'index.js' : 'testing.js'),
      }));
      b.onResolve({ filter: /^\.\/host\.js$/ }, (a) => (
        dirname(a.importer) === lib ? { path: join(lib, 'host-component.js') } : undefined
      ));
    },
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const app = resolve(opts.app);
  if (!existsSync(app)) fail(`no module at ${app}`);
  const out = resolve(opts.out);
  const wit = findWit(opts.wit);
  const componentize = findComponentize();
  const esbuild = loadEsbuild();

  const work = mkdtempSync(join(tmpdir(), 'sluice-js-'));
  try {
    // The bundle keeps the module's name, so that stack traces name it.
    const name = basename(app, extname(app)) + '.js';
    const bundle = join(work, name);
    let result;
    try {
      result = await esbuild.build({
        entryPoints: [app],
        outfile: bundle,
        bundle: true,
        format: 'esm',
        platform: 'neutral',
        mainFields: ['module', 'main'],
        target: 'es2022',
        external: ['log'],
        plugins: [sdkPlugin()],
        metafile: true,
        logLevel: 'warning',
        legalComments: 'none',
      });
    } catch {
      // esbuild printed the errors.
      process.exit(1);
    }
    const exports = Object.values(result.metafile.outputs)[0]?.exports ?? [];
    const missing = ['init', 'transform'].filter((e) => !exports.includes(e));
    if (missing.length) {
      fail(`${opts.app} does not export ${missing.join(' and ')}: end it with\n  export const { init, transform } = exportTransform(YourTransform);`);
    }
    if (opts.bundle) copyFileSync(bundle, resolve(opts.bundle));

    const args = [name, '-w', wit, '-n', 'transformer', '-d', ...DISABLED, '-o', out];
    const r = spawnSync(componentize, args, { cwd: work, stdio: 'inherit' });
    if (r.error) fail(`cannot run ${componentize}: ${r.error.message}`);
    if (r.status !== 0) process.exit(r.status ?? 1);
    if (!existsSync(out)) fail(`componentize-js wrote no ${out}`);
    console.error(`sluice-js-build: wrote ${out} (${(statSync(out).size / (1 << 20)).toFixed(1)} MiB)`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
