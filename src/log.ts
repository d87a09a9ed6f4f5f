import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** JSON logs to stdout (or to `destination`, e.g. a test stream). */
export function createLogger(level: LevelWithSilent = 'info', destination?: NodeJS.WritableStream): Logger {
  const opts = { level, base: { name: 'catalog-dns' }, timestamp: pino.stdTimeFunctions.isoTime };
  return destination ? pino(opts, destination as never) : pino(opts);
}

/** A logger that drops everything: the default for library use and unit tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
