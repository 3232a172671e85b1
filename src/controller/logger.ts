import { pino, type Logger } from 'pino';
import { OPERATOR_NAME } from './constants.js';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * JSON lines on stdout: string levels, ISO time, `app`. Synchronous writes: operator logs are low volume,
 * and the last lines before an exit (lost lease, SIGTERM) must not be lost in a buffer.
 */
export function createLogger(level: LogLevel = 'info', destination: number | NodeJS.WritableStream = 1): Logger {
  return pino(
    {
      level,
      base: { app: OPERATOR_NAME },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: ['*.token', '*.password', '*.authorization', 'headers.authorization'], censor: '[redacted]' },
    },
    typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination,
  );
}
