import { parentPort } from 'node:worker_threads';
import { loadHighsEngine } from './highs-engine.js';
import { solve } from './solve.js';
import type { SolveInput } from './types.js';

// Runs inside a worker thread: a long solve blocks this thread, never the controller's event loop.
// Messages posted before the engine has loaded wait in the port's queue.
const engine = await loadHighsEngine();
parentPort?.on('message', (msg: { id: number; input: SolveInput }) => {
  parentPort?.postMessage({ id: msg.id, result: solve(msg.input, engine) });
});
