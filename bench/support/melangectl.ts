// `melangectl emulate` and `melangectl router` from the TypeScript sources (no build step), for benchmarks that
// start them as real processes: node --import tsx bench/support/melangectl.ts emulate|router [flags]
// The same command functions as src/cli/main.ts dispatches to; only these two are loaded, so the benchmark
// does not depend on the rest of the CLI (plan, controller, profile) being importable at the moment.
import { EXIT, processIo, UsageError } from '../../src/cli/io.js';

async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (name === 'emulate') return await (await import('../../src/cli/emulate.js')).emulateCommand(rest, processIo);
    if (name === 'router') return await (await import('../../src/cli/router.js')).routerCommand(rest, processIo);
    processIo.err(`bench melangectl: unknown command "${name ?? ''}" (only emulate and router)`);
    return EXIT.usage;
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      processIo.err(`melangectl ${name ?? ''}: ${(err as Error).message}`);
      return EXIT.usage;
    }
    throw err;
  }
}

run(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => { console.error(err); process.exitCode = 1; },
);
