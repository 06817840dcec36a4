/** The worker's log lines, to stderr by default. */

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  /** `error`, when given, is what went wrong: the console logger prints its stack trace. */
  warn(message: string, error?: unknown): void;
  error(message: string, error?: unknown): void;
}

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

const LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error", "silent"];

/**
 * A logger writing `<time> <LEVEL> cerebelum.worker: <message>` lines to stderr, from `level`
 * (default: `$CEREBELUM_LOG_LEVEL`, else `info`) up.
 */
export function consoleLogger(level?: LogLevel): Logger {
  const fromEnv = process.env["CEREBELUM_LOG_LEVEL"]?.toLowerCase();
  const chosen = level ?? (LEVELS.find((known) => known === fromEnv) || "info");
  const threshold = LEVELS.indexOf(chosen);
  const write = (at: LogLevel, message: string, error?: unknown): void => {
    if (LEVELS.indexOf(at) < threshold) {
      return;
    }
    const detail = error instanceof Error ? `\n${error.stack ?? String(error)}` : error === undefined ? "" : ` ${String(error)}`;
    process.stderr.write(`${new Date().toISOString()} ${at.toUpperCase()} cerebelum.worker: ${message}${detail}\n`);
  };
  return {
    debug: (message) => write("debug", message),
    info: (message) => write("info", message),
    warn: (message, error) => write("warn", message, error),
    error: (message, error) => write("error", message, error),
  };
}
