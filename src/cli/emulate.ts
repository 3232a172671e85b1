import { parseArgs } from 'node:util';
import { pino, type Level } from 'pino';
import { GPU_TYPES, resolveGpuType } from '../emulator/gpu-models.js';
import { DEFAULT_EMULATED_MODEL, startEmulator } from '../emulator/server.js';
import { EXIT, UsageError, type Io } from './io.js';

export const EMULATE_USAGE = `Usage: melangectl emulate --gpu TYPE [--port 0] [--host 127.0.0.1] [--model NAME] [--speed X]

Runs an OpenAI-compatible server that behaves like vLLM serving a 7B model on one GPU of TYPE — an EMULATOR:
no GPU and no model are used; timings come from the performance model in docs/emulator.md.
  --gpu TYPE                  ${GPU_TYPES.join(', ')} (also l4, a10g, a100, h100)
  --port N                    port on --host (default 0: any free port; the "listening on" log line says which)
  --host ADDR                 address to listen on (default 127.0.0.1)
  --model NAME                served model name (default ${DEFAULT_EMULATED_MODEL})
  --speed X                   time dilation: X emulated seconds per real second (default 1); metrics and
                              usage stay in emulated seconds
  --max-num-seqs N            most requests batched at once (default 256, like vLLM)
  --max-num-batched-tokens N  most tokens per iteration (default 8192)
  --drain-timeout S           on SIGTERM/SIGINT, real seconds to let running requests finish (default 10)
  --log-level LEVEL           trace, debug, info (default), warn, error
Logs are JSON lines on stdout. Endpoints: /v1/completions, /v1/chat/completions (stream or not), /v1/models,
/health, /metrics (vllm:* series). Exit code 0 after a graceful shutdown, 2 on bad flags.`;

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

function intFlag(name: string, raw: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(v) || v < min || v > max) throw new UsageError(`--${name}: must be an integer in [${min}, ${max}], not "${raw}"`);
  return v;
}

function numFlag(name: string, raw: string | undefined, exclusiveMin: number): number | undefined {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || v <= exclusiveMin) throw new UsageError(`--${name}: must be a number > ${exclusiveMin}, not "${raw}"`);
  return v;
}

export interface EmulateDeps {
  /** Resolves when the process should shut down (default: SIGTERM or SIGINT). */
  shutdown?: Promise<unknown>;
}

export async function emulateCommand(argv: string[], io: Io, deps: EmulateDeps = {}): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      gpu: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      model: { type: 'string' },
      speed: { type: 'string' },
      'max-num-seqs': { type: 'string' },
      'max-num-batched-tokens': { type: 'string' },
      'drain-timeout': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) { io.out(EMULATE_USAGE); return EXIT.ok; }
  if (!values.gpu) throw new UsageError(`--gpu is required (${GPU_TYPES.join(', ')})`);
  const gpu = resolveGpuType(values.gpu);
  if (!gpu) throw new UsageError(`--gpu: unknown GPU type "${values.gpu}" (known: ${GPU_TYPES.join(', ')})`);
  const port = intFlag('port', values.port, 0, 65535);
  const speed = numFlag('speed', values.speed, 0);
  const maxNumSeqs = intFlag('max-num-seqs', values['max-num-seqs'], 1);
  const maxBatchedTokens = intFlag('max-num-batched-tokens', values['max-num-batched-tokens'], 1);
  const drain = values['drain-timeout'] === undefined ? 10 : Number(values['drain-timeout']);
  if (!Number.isFinite(drain) || drain < 0) throw new UsageError(`--drain-timeout: must be a number of seconds >= 0, not "${values['drain-timeout']}"`);
  const level = values['log-level'] ?? 'info';
  if (!LEVELS.includes(level)) throw new UsageError(`--log-level: must be one of ${LEVELS.join(', ')}, not "${level}"`);
  if (values.model !== undefined && values.model.trim() === '') throw new UsageError('--model: must not be empty');

  const logger = pino(
    { name: 'melange-emulator', level: level as Level },
    { write: (line: string) => io.out(line.endsWith('\n') ? line.slice(0, -1) : line) },
  );

  let onSignal: ((s: NodeJS.Signals) => void) | undefined;
  const shutdown =
    deps.shutdown ??
    new Promise<NodeJS.Signals>((resolve) => {
      onSignal = (s) => resolve(s);
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
    });
  try {
    const emulator = await startEmulator({
      gpu,
      ...(values.model !== undefined ? { model: values.model } : {}),
      ...(values.host !== undefined ? { host: values.host } : {}),
      ...(port !== undefined ? { port } : {}),
      ...(speed !== undefined ? { speed } : {}),
      limits: { ...(maxNumSeqs !== undefined ? { maxNumSeqs } : {}), ...(maxBatchedTokens !== undefined ? { maxBatchedTokens } : {}) },
      logger,
    });
    const why = await shutdown;
    logger.info({ signal: typeof why === 'string' ? why : undefined }, 'shutting down');
    await emulator.close({ drainMs: drain * 1000 });
    return EXIT.ok;
  } finally {
    if (onSignal) {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }
  }
}
