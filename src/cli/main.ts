import { readFileSync } from 'node:fs';
import { EXIT, processIo, UsageError, type Io } from './io.js';
import { ManifestError } from './manifests.js';

const USAGE = `melangectl: serve an LLM on the cheapest mix of GPU types that meets its SLO (Mélange).

Commands:
  plan        solve the cheapest GPU mix for an LLMService manifest, offline
  controller  run the operator (reconcile LLMServices into per-GPU-type Deployments)
  router      run the size-aware OpenAI-compatible router
  emulate     run a vLLM-like emulator of one GPU type (for tests and demos; no GPU needed)
  load        send bounded Poisson load to an OpenAI-compatible endpoint and report SLO attainment
  version     print the version

Run 'melangectl <command> --help' for a command's flags.`;

type Command = (argv: string[], io: Io) => Promise<number>;

// Each command's module is loaded when that command runs: a router pod does not load the operator's
// Kubernetes client, the solver or the profiler (tens of MB of heap it would carry, and scan, for nothing).
const commands: Record<string, () => Promise<Command>> = {
  plan: async () => (await import('./plan.js')).planCommand,
  emulate: async () => (await import('./emulate.js')).emulateCommand,
  load: async () => (await import('./load.js')).loadCommand,
  controller: async () => (await import('./controller.js')).controllerCommand,
  router: async () => {
    const { routerCommand } = await import('./router.js');
    return (argv, io) => routerCommand(argv, io);
  },
  profile: async () => {
    const { profileCommand } = await import('./profile.js');
    return (argv, io) => profileCommand(argv, io);
  },
  version: async () => async (_argv, io) => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    io.out(pkg.version);
    return EXIT.ok;
  },
};

/** Runs one CLI invocation and returns its exit code; never calls process.exit itself. */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(USAGE);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const load = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!load) {
    io.err(`melangectl: unknown command "${name}"\n\n${USAGE}`);
    return EXIT.usage;
  }
  try {
    return await (await load())(rest, io);
  } catch (err) {
    if (err instanceof ManifestError) {
      for (const line of err.lines) io.err(line);
      return EXIT.usage;
    }
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`melangectl ${name}: ${(err as Error).message}`);
      return EXIT.usage;
    }
    throw err;
  }
}
